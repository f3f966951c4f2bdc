package configsetjson

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"sigs.k8s.io/randfill"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/itemcache"
	"capstan.dev/capstan/pkg/apiserver/scheme"
	"capstan.dev/capstan/test/utils/configsets"
)

// randomConfigRevision fills every field of a ConfigRevision as
// randomConfigSet does a ConfigSet's.
func randomConfigRevision(seed uint64) *v1beta1.ConfigRevision {
	cs := randomConfigSet(seed)
	r := rand.New(rand.NewPCG(seed, ^seed))
	f := randfill.NewWithSeed(int64(seed)).NilChance(0.3).NumElements(0, 4).Funcs(
		func(s *string, c randfill.Continue) { *s = randomString(r) },
	)
	rev := &v1beta1.ConfigRevision{ObjectMeta: cs.ObjectMeta, Data: cs.Spec.Data, SecretData: cs.Spec.SecretData}
	f.Fill(&rev.ConfigSetName)
	f.Fill(&rev.Author)
	f.Fill(&rev.ChangeCause)
	rev.Revision, rev.RollbackOf = r.Int64N(1<<40)-1<<20, r.Int64N(3)
	return rev
}

// serializerDecode is what the storage codec's JSON serializer decodes data
// into, when it decodes it into nothing.
func serializerDecode(data []byte) (runtime.Object, error) {
	obj, _, err := jsonSerializer().Decode(data, nil, nil)
	return obj, err
}

// sameAsSerializer fails t unless decodeObject read data as the serializer
// does, or left it to the serializer; it reports whether decodeObject read it.
func sameAsSerializer(t testing.TB, data []byte) bool {
	t.Helper()
	got, gvk := decodeObject(data)
	if got == nil {
		return false
	}
	want, err := serializerDecode(data)
	if err != nil {
		t.Fatalf("decodeObject read %q, the serializer refuses it: %v", data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeObject read %q as\n%#v\nthe serializer as\n%#v", data, got, want)
	}
	if *gvk != want.GetObjectKind().GroupVersionKind() {
		t.Fatalf("decodeObject read %q as a %v, the serializer as a %v", data, *gvk, want.GetObjectKind().GroupVersionKind())
	}
	return true
}

// TestDecodeAsSerializer: random ConfigSets and ConfigRevisions, with every
// field set, empty or nil, as both encoders write them, are read as the
// serializer reads them, and none is left to it: the server stores nothing
// decodeObject leaves.
func TestDecodeAsSerializer(t *testing.T) {
	for seed := range uint64(2000) {
		cs := randomConfigSet(seed)
		cs.APIVersion, cs.Kind = v1beta1.SchemeGroupVersion.String(), "ConfigSet"
		encoded := [][]byte{stdJSON(t, cs)}
		if b, ok := encodeFast(t, cs); ok {
			encoded = append(encoded, b)
		}
		rev := randomConfigRevision(seed)
		rev.APIVersion, rev.Kind = v1beta1.SchemeGroupVersion.String(), "ConfigRevision"
		encoded = append(encoded, stdJSON(t, rev))
		for _, data := range encoded {
			if !sameAsSerializer(t, data) {
				t.Fatalf("seed %d: left %s to the serializer", seed, data)
			}
		}
	}
}

const (
	csHead  = `{"kind":"ConfigSet","apiVersion":"config.capstan.dev/v1beta1"`
	revHead = `{"kind":"ConfigRevision","apiVersion":"config.capstan.dev/v1beta1"`
)

// decodeCases are documents decodeObject reads, and ones it must leave to
// the serializer, because it would read them otherwise or refuse them.
var decodeCases = []struct {
	name string
	data string
	read bool
}{
	{"nulls", csHead + `,"metadata":{"name":null,"labels":null,"deletionTimestamp":null,"creationTimestamp":null,"generation":null,"finalizers":[null]},"spec":null,"status":{"conditions":null,"projection":null}}`, true},
	{"empty maps and arrays", csHead + `,"metadata":{"labels":{},"annotations":{},"ownerReferences":[],"finalizers":[],"managedFields":[]},"spec":{"data":{},"secretData":{},"projection":{}},"status":{"conditions":[],"projection":{"consumers":[]}}}`, true},
	{"null entries", csHead + `,"spec":{"data":{"a":null},"secretData":{"b":null,"c":""}}}`, true},
	{"white space", " \n" + `{ "kind" : "ConfigSet" , "apiVersion":"config.capstan.dev/v1beta1",` + "\t" + `"metadata" : { "name" : "a" , "generation" : 3 } } ` + "\r\n", true},
	{"escapes", csHead + `,"metadata":{"name":"a\u003cb\"\\\/\b\f\n\r\t\ud83d\ude00\udc00"},"spec":{"data":{"k\u00e9y":"caf\u00e9","bad":"` + "\xff" + `"},"secretData":{"s":"YWJj\r\nZA=="}}}`, true},
	{"times", csHead + `,"metadata":{"creationTimestamp":"2026-12-07T10:00:00Z","deletionTimestamp":"2026-12-07T11:00:00+02:00","managedFields":[{"time":"2026-12-07T10:00:00\u005a","fieldsV1":{"f:a":[1,-2.5e+3,true,false,null,"x\"y"]}}]}}`, true},
	{"field set null", csHead + `,"metadata":{"managedFields":[{"fieldsV1":null}]}}`, true},
	{"revision", revHead + `,"metadata":{"name":"a.1"},"configSetName":"a","revision":-0,"data":{"k":"v"},"author":"u","rollbackOf":9223372036854775807}`, true},
	{"limits", csHead + `,"spec":{"revisionHistoryLimit":2147483647,"immutable":false}}`, true},

	{"apiVersion first", `{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"a"},"spec":{"data":{"k":"v"}}}`, true},
	{"kind third", `{"apiVersion":"config.capstan.dev/v1beta1","metadata":{"name":"a"},"kind":"ConfigSet"}`, false},
	{"kind last", `{"metadata":{"name":"a"},"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet"}`, false},
	{"apiVersion first and twice", `{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","apiVersion":"config.capstan.dev/v1beta1"}`, false},
	{"entry twice", csHead + `,"spec":{"data":{"a":"1","a":"2"}}}`, false},
	{"no apiVersion", `{"kind":"ConfigSet","metadata":{}}`, false},
	{"other version", `{"kind":"ConfigSet","apiVersion":"config.capstan.dev/v1"}`, false},
	{"other kind", `{"kind":"ConfigPolicy","apiVersion":"config.capstan.dev/v1beta1"}`, false},
	{"kind only", `{"kind":"ConfigSet"}`, false},
	{"unknown field", csHead + `,"metadata":{"name":"a","clusterName":"x"}}`, false},
	{"field twice", csHead + `,"metadata":{"labels":{"a":"1"},"labels":{"b":"2"}}}`, false},
	{"apiVersion twice", csHead + `,"apiVersion":"v1"}`, false},
	{"kind twice", csHead + `,"kind":"ConfigSet"}`, false},
	{"key case", csHead + `,"Metadata":{}}`, false},
	{"escaped key", csHead + `,"metad\u0061ta":{"name":"a"}}`, false},
	{"fraction", csHead + `,"metadata":{"generation":1.0}}`, false},
	{"exponent", csHead + `,"metadata":{"generation":1e3}}`, false},
	{"leading zero", csHead + `,"metadata":{"generation":01}}`, false},
	{"int32 overflow", csHead + `,"spec":{"revisionHistoryLimit":2147483648}}`, false},
	{"int64 overflow", revHead + `,"revision":9223372036854775808}`, false},
	{"string for int", csHead + `,"metadata":{"generation":"1"}}`, false},
	{"number for string", csHead + `,"metadata":{"name":1}}`, false},
	{"bad base64", csHead + `,"spec":{"secretData":{"s":"!!"}}}`, false},
	{"bad time", csHead + `,"metadata":{"creationTimestamp":"yesterday"}}`, false},
	{"bad escape", csHead + `,"metadata":{"name":"\x"}}`, false},
	{"control character", csHead + `,"metadata":{"name":"a` + "\n" + `"}}`, false},
	{"trailing comma", csHead + `,"metadata":{"name":"a",}}`, false},
	{"trailing garbage", csHead + `}x`, false},
	{"two documents", csHead + `}{}`, false},
	{"unterminated", csHead + `,"metadata":{"name":"a"}`, false},
	{"bad literal", csHead + `,"spec":{"immutable":tru}}`, false},
	{"literal run on", csHead + `,"spec":{"immutable":truex}}`, false},
	{"bad field set", csHead + `,"metadata":{"managedFields":[{"fieldsV1":{"a":01}}]}}`, false},
	{"deep field set", csHead + `,"metadata":{"managedFields":[{"fieldsV1":` + strings.Repeat("[", maxSkipDepth+2) + strings.Repeat("]", maxSkipDepth+2) + `}]}}`, false},
}

// TestDecodeCases: each document is read as the serializer reads it, or
// left to it, as the case says.
func TestDecodeCases(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			if read := sameAsSerializer(t, []byte(tc.data)); read != tc.read {
				t.Errorf("decodeObject read it: %v, want %v", read, tc.read)
			}
		})
	}
}

// FuzzDecode: whatever decodeObject reads, the serializer reads the same.
// `go test -fuzz FuzzDecode ./pkg/apiserver/configsetjson/` runs it beyond
// the seeds.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.data))
	}
	for seed := range uint64(20) {
		cs := randomConfigSet(seed)
		cs.APIVersion, cs.Kind = v1beta1.SchemeGroupVersion.String(), "ConfigSet"
		f.Add(stdJSON(f, cs))
		rev := randomConfigRevision(seed)
		rev.APIVersion, rev.Kind = v1beta1.SchemeGroupVersion.String(), "ConfigRevision"
		f.Add(stdJSON(f, rev))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsSerializer(t, data) })
}

// storageCodec is the server's storage codec for JSON, with the decoders
// StorageDecoders gives it or without.
func storageCodec(t testing.TB, withDecoders bool) runtime.Codec {
	t.Helper()
	cfg := serverstorage.StorageCodecConfig{
		StorageMediaType:   runtime.ContentTypeJSON,
		StorageSerializer:  scheme.Codecs,
		StorageVersion:     v1beta1.SchemeGroupVersion,
		MemoryVersion:      config.SchemeGroupVersion,
		EncoderDecoratorFn: StorageEncoder,
	}
	if withDecoders {
		cfg.DecoderDecoratorFn = StorageDecoders
	}
	codec, _, err := serverstorage.NewStorageCodec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return codec
}

// TestStorageDecoders: the storage codec with StorageDecoders reads what the
// codec without them reads, into nothing and into the objects the registry
// gives it, ConfigSets, ConfigRevisions and what decodeObject leaves alike;
// and it gives up where the codec without them fails.
func TestStorageDecoders(t *testing.T) {
	with, without := storageCodec(t, true), storageCodec(t, false)
	cs := &config.ConfigSet{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop", UID: "u1", ResourceVersion: "7",
		CreationTimestamp: metav1.NewTime(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)), Labels: map[string]string{"app": "<shop>"}},
		Spec:   config.ConfigSetSpec{Data: map[string]string{"LEVEL": "info"}, SecretData: map[string][]byte{"TOKEN": []byte("t")}, RevisionHistoryLimit: 10},
		Status: config.ConfigSetStatus{CurrentRevision: 3, ObservedGeneration: 2}}
	rev := &config.ConfigRevision{ObjectMeta: metav1.ObjectMeta{Name: "checkout.3", Namespace: "shop"}, ConfigSetName: "checkout", Revision: 3,
		Data: map[string]string{"LEVEL": "info"}, SecretData: map[string][]byte{"TOKEN": []byte("t")}, Author: "alice"}
	policy := &config.ConfigPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: config.ConfigPolicySpec{RequiredKeys: []string{"LEVEL"}}}
	var stored [][]byte
	for _, obj := range []runtime.Object{cs, rev, policy} {
		var buf bytes.Buffer
		if err := with.Encode(obj, &buf); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, buf.Bytes())
	}
	// A stored ConfigSet with a field this release does not know: left to
	// the serializer, which ignores it.
	stored = append(stored, bytes.Replace(stored[0], []byte(`"metadata":{`), []byte(`"metadata":{"future":1,`), 1))
	for i, data := range stored {
		read := func(codec runtime.Codec, into runtime.Object) (runtime.Object, error) {
			obj, _, err := codec.Decode(data, nil, into)
			return obj, err
		}
		for _, into := range []func() runtime.Object{
			func() runtime.Object { return nil },
			func() runtime.Object { return &config.ConfigSet{} },
			func() runtime.Object { return &config.ConfigRevision{} },
		} {
			got, gotErr := read(with, into())
			want, wantErr := read(without, into())
			if (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("object %d into %T: error %v, without StorageDecoders %v", i, into(), gotErr, wantErr)
			}
			if gotErr == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("object %d into %T:\n%#v\nwithout StorageDecoders\n%#v", i, into(), got, want)
			}
		}
	}
	if got, _, err := with.Decode(stored[0], nil, nil); err != nil || got.(*config.ConfigSet).Spec.Data["LEVEL"] != "info" {
		t.Fatalf("read back %v, %v", got, err)
	}
}

// BenchmarkDecode compares the serializer and decodeObject on one of the
// bench's ConfigSets (16 entries, managed fields) and its revision.
func BenchmarkDecode(b *testing.B) {
	cs := &configsets.BenchList(1).Items[0]
	rev := &v1beta1.ConfigRevision{TypeMeta: metav1.TypeMeta{APIVersion: cs.APIVersion, Kind: "ConfigRevision"},
		ObjectMeta: cs.ObjectMeta, ConfigSetName: cs.Name, Revision: 1, Data: cs.Spec.Data, SecretData: cs.Spec.SecretData, Author: "bench"}
	for _, obj := range []runtime.Object{cs, rev} {
		data := stdJSON(b, obj)
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		b.Run(fmt.Sprintf("%s/serializer", kind), func(b *testing.B) {
			for b.Loop() {
				if _, err := serializerDecode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%s/configsetjson", kind), func(b *testing.B) {
			for b.Loop() {
				if obj, _ := decodeObject(data); obj == nil {
					b.Fatal("left to the serializer")
				}
			}
		})
	}
}

// TestRequestDecoding: the negotiated JSON serializers, plain and strict,
// read a request's ConfigSet as scheme.Codecs' own do, and the strict one
// still warns about, or refuses, unknown fields and keys given twice.
func TestRequestDecoding(t *testing.T) {
	ours, theirs := jsonInfo(t, NegotiatedSerializer(scheme.Codecs, itemcache.New("json", itemcache.DefaultBudget))), jsonInfo(t, scheme.Codecs)
	for _, body := range []string{
		`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"checkout","namespace":"shop","labels":{"app":"shop"}},"spec":{"data":{"LEVEL":"info"},"secretData":{"TOKEN":"dA=="}}}`,
		`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"checkout","colour":"blue"}}`,
		`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"checkout"},"spec":{"data":{"a":"1","a":"2"}}}`,
		`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":"checkout"},"metadata":{"namespace":"shop"}}`,
		`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSet","metadata":{"name":1}}`,
	} {
		for _, strict := range []bool{false, true} {
			decode := func(info runtime.SerializerInfo) (runtime.Object, error) {
				s := info.Serializer
				if strict {
					s = info.StrictSerializer
				}
				obj, _, err := scheme.Codecs.DecoderToVersion(s, config.SchemeGroupVersion).Decode([]byte(body), nil, &config.ConfigSet{})
				return obj, err
			}
			got, gotErr := decode(ours)
			want, wantErr := decode(theirs)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Errorf("strict %v, %s: error %v, want %v", strict, body, gotErr, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("strict %v, %s:\n%#v\nwant\n%#v", strict, body, got, want)
			}
		}
	}
}
