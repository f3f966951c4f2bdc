package configsetproto

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/randfill"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/itemcache"
	"capstan.dev/capstan/pkg/apiserver/scheme"
	"capstan.dev/capstan/test/utils/configsets"
)

// protobufSerializer is the protobuf serializer of a codec factory of the
// server's scheme, with or without streaming lists.
func protobufSerializer(t testing.TB, streaming bool) runtime.Serializer {
	t.Helper()
	var opts []runtimeserializer.CodecFactoryOptionsMutator
	if streaming {
		opts = append(opts, runtimeserializer.WithStreamingCollectionEncodingToProtobuf())
	}
	for _, info := range runtimeserializer.NewCodecFactory(scheme.Scheme, opts...).SupportedMediaTypes() {
		if info.MediaType == runtime.ContentTypeProtobuf {
			return info.Serializer
		}
	}
	t.Fatal("no protobuf serializer")
	return nil
}

func encode(t testing.TB, e runtime.Encoder, obj runtime.Object) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Encode(obj, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// randomList fills a list of n ConfigSets, every field nil, empty or set,
// each item with a resourceVersion and uid (what lists of stored objects
// carry) unless noIdentity.
func randomList(seed int64, n int, noIdentity bool) *v1beta1.ConfigSetList {
	f := randfill.NewWithSeed(seed).NilChance(0.3).NumElements(0, 4).Funcs(
		func(si **metav1.ShardInfo, c randfill.Continue) { *si = nil },
	)
	l := &v1beta1.ConfigSetList{}
	f.Fill(&l.ListMeta)
	l.Kind, l.APIVersion = "ConfigSetList", v1beta1.SchemeGroupVersion.String()
	if n >= 0 {
		l.Items = make([]v1beta1.ConfigSet, n)
	}
	for i := range l.Items {
		f.Fill(&l.Items[i])
		l.Items[i].Namespace, l.Items[i].Name = "ns", fmt.Sprintf("cs-%d", i)
		if noIdentity {
			continue
		}
		l.Items[i].UID = "5f3c9a10-0000-4000-8000-000000000001"
		l.Items[i].ResourceVersion = fmt.Sprint(1000 + i)
	}
	return l
}

// TestListsAsProtobufSerializer: for random lists, the bytes are those of
// k8s.io/apimachinery's protobuf serializer, streaming or not, with the
// items marshalled, kept, and taken from the cache.
func TestListsAsProtobufSerializer(t *testing.T) {
	inner := protobufSerializer(t, true)
	plain := protobufSerializer(t, false)
	for seed := range int64(200) {
		n := int(seed%7) - 1 // -1: no items at all
		if seed%50 == 0 {
			n = 3000 // larger than what is gathered before a write
		}
		l := randomList(seed, n, seed%5 == 0)
		want := encode(t, inner, l)
		if other := encode(t, plain, l); !bytes.Equal(other, want) {
			t.Fatalf("seed %d: the serializer writes other bytes streaming and not", seed)
		}
		s := newSerializer(inner, itemcache.New("protobuf-test", itemcache.DefaultBudget))
		for _, pass := range []string{"marshalled", "from the cache"} {
			if got := encode(t, s, l); !bytes.Equal(got, want) {
				t.Fatalf("seed %d, items %s: got %d bytes, want the serializer's %d", seed, pass, len(got), len(want))
			}
		}
	}
}

// TestItemsKept: a list's item is taken from the cache while its identity
// is the one it was kept with, and marshalled again otherwise.
func TestItemsKept(t *testing.T) {
	inner := protobufSerializer(t, true)
	items := itemcache.New("protobuf-test", itemcache.DefaultBudget)
	s := newSerializer(inner, items)
	l := randomList(1, 3, false)
	kept := encode(t, s, l)
	if n, _ := items.Size(); n != 3 {
		t.Fatalf("kept %d items, want 3", n)
	}
	// Changed in memory under the same identity, the item is the kept one:
	// this is what shows the cache is read.
	l.Items[0].Spec.Data = map[string]string{"changed": "in place"}
	if got := encode(t, s, l); !bytes.Equal(got, kept) {
		t.Fatal("same identity: marshalled afresh, want the kept bytes")
	}
	l.Items[0].ResourceVersion = "2000"
	got, want := encode(t, s, l), encode(t, inner, l)
	if !bytes.Equal(got, want) || bytes.Equal(got, kept) {
		t.Fatal("a new resourceVersion: want the item marshalled again")
	}
}

// TestOtherObjects: ConfigSets, other kinds and decoding are the wrapped
// serializer's.
func TestOtherObjects(t *testing.T) {
	inner := protobufSerializer(t, true)
	s := newSerializer(inner, itemcache.New("protobuf-test", itemcache.DefaultBudget))
	cs := &randomList(7, 1, false).Items[0]
	cs.Kind, cs.APIVersion = "ConfigSet", v1beta1.SchemeGroupVersion.String()
	policies := &v1beta1.ConfigPolicyList{TypeMeta: metav1.TypeMeta{Kind: "ConfigPolicyList", APIVersion: v1beta1.SchemeGroupVersion.String()},
		Items: []v1beta1.ConfigPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u", ResourceVersion: "1"}}}}
	for _, obj := range []runtime.Object{cs, policies} {
		want := encode(t, inner, obj)
		if got := encode(t, s, obj); !bytes.Equal(got, want) {
			t.Errorf("%T: got other bytes than the serializer's", obj)
		}
		var buf bytes.Buffer
		if err := s.EncodeWithAllocator(obj, &buf, &runtime.Allocator{}); err != nil || !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%T with an allocator: %v, or other bytes than the serializer's", obj, err)
		}
	}
	decoded, _, err := s.Decode(encode(t, inner, cs), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := decoded.(*v1beta1.ConfigSet); !ok || got.Name != cs.Name || got.UID != cs.UID {
		t.Errorf("decoded %#v", decoded)
	}
}

// TestNegotiatedSerializer: only the protobuf serializer of the negotiated
// ones is wrapped, and a list written through it, with the allocator the
// versioning codec passes, is the serializer's.
func TestNegotiatedSerializer(t *testing.T) {
	base := runtimeserializer.NewCodecFactory(scheme.Scheme, runtimeserializer.WithStreamingCollectionEncodingToProtobuf())
	ns := NegotiatedSerializer(base, itemcache.New("protobuf", itemcache.DefaultBudget))
	var wrapped *serializer
	for i, info := range ns.SupportedMediaTypes() {
		orig := base.SupportedMediaTypes()[i]
		if s, ok := info.Serializer.(*serializer); ok {
			if info.MediaType != runtime.ContentTypeProtobuf {
				t.Errorf("%s is wrapped", info.MediaType)
			}
			wrapped = s
		} else if info.Serializer != orig.Serializer {
			t.Errorf("%s is not the factory's", info.MediaType)
		}
	}
	if wrapped == nil {
		t.Fatal("protobuf is not wrapped")
	}
	l := randomList(3, 5, false)
	enc := ns.EncoderForVersion(wrapped, v1beta1.SchemeGroupVersion)
	var buf bytes.Buffer
	if err := enc.(runtime.EncoderWithAllocator).EncodeWithAllocator(l, &buf, &runtime.Allocator{}); err != nil {
		t.Fatal(err)
	}
	if want := encode(t, protobufSerializer(t, true), l); !bytes.Equal(buf.Bytes(), want) {
		t.Error("a list through the versioning codec: other bytes than the serializer's")
	}
	if n, _ := wrapped.items.Size(); n != 5 {
		t.Errorf("the list's items kept: %d, want 5", n)
	}
}

// failingWriter fails its n-th write.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n--; w.n == 0 {
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

// TestWriteErrors: an error of the writer is returned, wherever it happens.
func TestWriteErrors(t *testing.T) {
	s := newSerializer(protobufSerializer(t, true), itemcache.New("protobuf-test", itemcache.DefaultBudget))
	l := randomList(5, 3000, false)
	for n := 1; n <= 3; n++ {
		if err := s.Encode(l, &failingWriter{n: n}); err == nil {
			t.Errorf("write %d failing: no error", n)
		}
	}
}

// BenchmarkListOf1000: a list of 1,000 ConfigSets of the bench's shape, by the
// protobuf serializer, and with the items kept and new.
func BenchmarkListOf1000(b *testing.B) {
	l := configsets.BenchList(1000)
	inner := protobufSerializer(b, true)
	for name, s := range map[string]runtime.Encoder{
		"serializer": inner,
		"items-kept": newSerializer(inner, itemcache.New("protobuf-bench", itemcache.DefaultBudget)),
	} {
		b.Run(name, func(b *testing.B) {
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := s.Encode(l, &buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("items-new", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := newSerializer(inner, itemcache.New("protobuf-bench", itemcache.DefaultBudget)).Encode(l, &buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
