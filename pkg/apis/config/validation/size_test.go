package validation

import (
	"encoding/json"
	"strings"
	"testing"

	"capstan.dev/capstan/pkg/apis/config"
)

func TestJSONStringSizeMatchesEncoder(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "tab\tnewline\ncr\r", "\x00\x01\x1f",
		"<html>&amp;</html>", "caf\u00e9 \u4e16\u754c \U0001F600", "\u2028\u2029",
		"bad utf8 \xff\xfe end", "\xe2\x82", strings.Repeat("<", 1000),
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonStringSize(s); got != int64(len(want)) {
			t.Errorf("jsonStringSize(%q) = %d, encoding/json writes %d bytes (%s)", s, got, len(want), want)
		}
	}
}

func TestEncodedEntriesSizeMatchesEncoder(t *testing.T) {
	data := map[string]string{"a<b": "x&y", "k": "\x01"}
	secret := map[string][]byte{"s": {0, 1, 2, 3, 255}, "empty": {}}
	d, _ := json.Marshal(data)
	sd, _ := json.Marshal(secret)
	// Each map adds its braces and, per entry, a colon and all but one comma.
	want := int64(len(d)-2-(2*len(data)-1)) + int64(len(sd)-2-(2*len(secret)-1))
	if got := EncodedEntriesSize(data, secret); got != want {
		t.Errorf("EncodedEntriesSize = %d, want %d", got, want)
	}
}

func TestEscapingHeavyEntriesAreRejected(t *testing.T) {
	// 300 KiB of '<' is far below the raw limit but six times larger as stored.
	cs := validConfigSetForSize()
	cs.Spec.Data = map[string]string{"html": strings.Repeat("<", 300<<10)}
	errs := ValidateConfigSet(cs)
	if len(errs) != 1 || errs[0].Field != "spec" {
		t.Fatalf("want one error on spec, got %v", errs)
	}
	// A full megabyte of secret bytes still fits once base64-encoded.
	cs.Spec.Data = nil
	cs.Spec.SecretData = map[string][]byte{"blob": make([]byte, config.MaxEntriesBytes-4)}
	if errs := ValidateConfigSet(cs); len(errs) != 0 {
		t.Fatalf("1 MiB of secret data rejected: %v", errs)
	}
}

func validConfigSetForSize() *config.ConfigSet {
	cs := &config.ConfigSet{}
	cs.Name, cs.Namespace = "size", "default"
	cs.Spec.RevisionHistoryLimit = 10
	return cs
}
