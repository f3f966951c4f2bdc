package configsetjson

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/randfill"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/itemcache"
	"capstan.dev/capstan/test/utils/configsets"
)

// stdJSON is what encoding/json's Encoder, which k8s.io/apimachinery's JSON
// serializer uses, writes for obj.
func stdJSON(t testing.TB, obj any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(obj); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// encodeFast is what the package's encoder writes for obj.
func encodeFast(t testing.TB, obj *v1beta1.ConfigSet) ([]byte, bool) {
	t.Helper()
	b, ok := appendConfigSet(nil, obj, &scratch{})
	return append(b, '\n'), ok
}

// awkward strings: what JSON and encoding/json's HTML escaping escape,
// invalid UTF-8, and the two separators encoding/json always escapes.
var awkward = []string{
	"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "\b\f\n\r\t\x00\x01\x1f\x7f",
	"caf\u00e9 \u65e5\u672c", "line\u2028para\u2029", "bad \xff\xfe utf8", "\xe2\x80", "emoji \U0001F600",
}

// fieldSets are FieldsV1 values: the first ones as the field manager writes
// them, then some encoding/json would change or refuse, which the encoder
// must leave to it.
var fieldSets = []string{
	`{}`,
	`{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:data":{".":{},"f:a":{}}}}`,
	`{"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:status":{}}}}}`,
	`{"f:metadata": {}}`,
	`{"f:spec":{"f:data":{"f:<a&b>":{}}}}`,
	`{"f:x":{"v:\"caf\u00e9\"":{}}}`,
	`{"f:x":{"v:1":{}},"f:y":[]}`,
	`{"f:x":{"v:\u2028":{}}}`,
}

func randomString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return awkward[r.IntN(len(awkward))]
	}
	var b strings.Builder
	for range r.IntN(12) {
		b.WriteRune(rune(r.IntN(0x300)))
	}
	return b.String()
}

// randomConfigSet fills every field of a ConfigSet, nil, empty and set, with
// awkward strings among the random ones.
func randomConfigSet(seed uint64) *v1beta1.ConfigSet {
	r := rand.New(rand.NewPCG(seed, seed))
	f := randfill.NewWithSeed(int64(seed)).NilChance(0.3).NumElements(0, 4).Funcs(
		func(s *string, c randfill.Continue) { *s = randomString(r) },
		func(t *metav1.Time, c randfill.Continue) {
			if r.IntN(4) > 0 {
				*t = metav1.NewTime(time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("z", 3600*(r.IntN(25)-12))))
			}
		},
		func(fs *metav1.FieldsV1, c randfill.Continue) {
			if r.IntN(5) > 0 {
				fs.Raw = []byte(fieldSets[r.IntN(len(fieldSets))])
			}
		},
		func(b *[]byte, c randfill.Continue) {
			switch r.IntN(4) {
			case 0:
				*b = nil
			case 1:
				*b = []byte{}
			default:
				*b = []byte(randomString(r))
			}
		},
		func(si **metav1.ShardInfo, c randfill.Continue) { *si = nil },
	)
	cs := &v1beta1.ConfigSet{}
	f.Fill(cs)
	return cs
}

// TestConfigSetAsEncodingJSON: for random ConfigSets, with every field set,
// empty or nil and with strings JSON must escape, the encoder writes the
// bytes encoding/json writes, or leaves the object to it.
func TestConfigSetAsEncodingJSON(t *testing.T) {
	fast, left := 0, 0
	for seed := range uint64(3000) {
		cs := randomConfigSet(seed)
		got, ok := encodeFast(t, cs)
		if !ok {
			left++
			continue
		}
		fast++
		if want := stdJSON(t, cs); !bytes.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, got, want)
		}
	}
	t.Logf("encoded %d random ConfigSets, left %d to encoding/json", fast, left)
	// Most objects hold only what the encoder handles: if it left most of
	// them to encoding/json, it would compare nothing.
	if fast < 1500 {
		t.Errorf("encoded %d of 3000 random ConfigSets, left %d to encoding/json; want most encoded", fast, left)
	}
}

// TestFieldSetsLeftToEncodingJSON: field sets encoding/json would rewrite
// (spaces, characters it escapes) or that are not field sets are left to it;
// those the field manager writes are copied.
func TestFieldSetsLeftToEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		fast bool
	}{
		{`{}`, true},
		{`{"f:metadata":{"f:labels":{".":{},"f:app":{}}}}`, true},
		{`{"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{}}}}}`, true},
		{`{"f:metadata": {}}`, false},
		{` {}`, false},
		{`{"f:<a&b>":{}}`, false},
		{`{"v:\"caf\u00e9\"":{}}`, false},
		{`{"v:\u0041":{}}`, false},
		{`{"f:x":[]}`, false},
		{`{"f:x":{}`, false},
		{`{"f:x":{}}}`, false},
		{`{"f:x":{},}`, false},
		{`{"f:x"}`, false},
		{`{"f:x\`, false},
		{strings.Repeat(`{"a":`, maxFieldSetDepth+2) + `{}` + strings.Repeat(`}`, maxFieldSetDepth+2), false},
	} {
		if got := isCompactFieldSet([]byte(tc.raw)); got != tc.fast {
			t.Errorf("isCompactFieldSet(%q) = %v, want %v", tc.raw, got, tc.fast)
		}
	}
}

// BenchmarkListOf1000 compares encoding/json and this package, without the
// items kept encoded between lists, with all of them kept and with none yet,
// on a list of the bench's
// objects (16 entries, about 1 KiB of values).
func BenchmarkListOf1000(b *testing.B) {
	l := configsets.BenchList(1000)
	b.Run("encoding-json", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := json.NewEncoder(&buf).Encode(l); err != nil {
				b.Fatal(err)
			}
		}
	})
	for name, items := range map[string]*itemcache.Cache{"configsetjson": nil, "configsetjson-items-kept": itemcache.New("json", itemcache.DefaultBudget)} {
		b.Run(name, func(b *testing.B) {
			enc := newEncoder(jsonSerializer(), items)
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := enc.Encode(l, &buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// Every item new to the cache, as on the first list after a restart or
	// of objects that all changed: encoded and copied into the cache.
	b.Run("configsetjson-items-new", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			enc := newEncoder(jsonSerializer(), itemcache.New("json", itemcache.DefaultBudget))
			if err := enc.Encode(l, &buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
