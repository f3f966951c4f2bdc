package app

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"k8s.io/cli-runtime/pkg/printers"
)

// Marker lines end a multi-line value whose final line break is not the usual
// one, so that two values differing only there never render alike: a value
// of several lines usually ends with a line break (it is a file), a value of
// one line usually does not.
const (
	noFinalNewlineMarker = `\ no newline at end of value`
	finalNewlineMarker   = `\ newline at end of value`
)

// secretRenderer turns a secret value into the text a diff shows for it.
type secretRenderer struct {
	// reveal shows the value itself instead of its fingerprint.
	reveal bool
	// key keys the fingerprints. It is random for each run of the plugin, so
	// that a fingerprint says whether two values in one output differ but
	// cannot be used to test guesses of a short secret against output pasted
	// somewhere else.
	key []byte
}

// newSecretRenderer returns a renderer with a fresh fingerprint key.
func newSecretRenderer(reveal bool) (secretRenderer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return secretRenderer{}, fmt.Errorf("making a key for secret fingerprints: %w", err)
	}
	return secretRenderer{reveal: reveal, key: key}, nil
}

// value returns the text of a secret value: the value itself when revealed
// (base64 when it is not text), else its size and fingerprint.
func (r secretRenderer) value(v []byte) string {
	if r.reveal {
		if utf8.Valid(v) {
			return string(v)
		}
		return fmt.Sprintf("<binary: %s, base64 %s>", byteCount(len(v)), base64.StdEncoding.EncodeToString(v))
	}
	mac := hmac.New(sha256.New, r.key)
	mac.Write(v)
	return fmt.Sprintf("<secret: %s, fingerprint %x>", byteCount(len(v)), mac.Sum(nil)[:4])
}

func byteCount(n int) string {
	if n == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}

// entryLines renders the entries of a ConfigSet or ConfigRevision as lines
// sorted by key, data and secret entries together, so that an entry moved
// between them stays in place. See valueLines for how one entry looks.
func entryLines(data map[string]string, secretData map[string][]byte, secrets secretRenderer) []string {
	type entry struct {
		key, value string
	}
	entries := make([]entry, 0, len(data)+len(secretData))
	for k, v := range data {
		entries = append(entries, entry{k, v})
	}
	for k, v := range secretData {
		entries = append(entries, entry{k, secrets.value(v)})
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	var lines []string
	for _, e := range entries {
		for _, l := range valueLines(e.key, e.value) {
			// A value must not be able to drive the terminal of whoever
			// reads the diff.
			lines = append(lines, printers.EscapeTerminal(l))
		}
	}
	return lines
}

// valueLines renders one entry as `KEY=value`. A value of several lines puts
// its first line after the key and indents the others under it, so that a
// change to one line of a file-like value shows as that line only:
//
//	config.yaml=server:
//	              port: 8080
//
// Whether the value ends with a line break is kept visible by a marker line
// when it is not what its number of lines suggests; see noFinalNewlineMarker.
func valueLines(key, value string) []string {
	if !strings.Contains(value, "\n") {
		return []string{key + "=" + value}
	}
	pieces := strings.Split(value, "\n")
	final := pieces[len(pieces)-1] == ""
	if final {
		pieces = pieces[:len(pieces)-1]
	}
	indent := strings.Repeat(" ", len(key)+1)
	lines := make([]string, 0, len(pieces)+1)
	lines = append(lines, key+"="+pieces[0])
	for _, p := range pieces[1:] {
		lines = append(lines, indent+p)
	}
	switch {
	case len(pieces) == 1 && final:
		lines = append(lines, indent+finalNewlineMarker)
	case len(pieces) > 1 && !final:
		lines = append(lines, indent+noFinalNewlineMarker)
	}
	return lines
}
