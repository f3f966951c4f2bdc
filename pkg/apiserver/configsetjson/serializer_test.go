package configsetjson

import (
	"bytes"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	serverstorage "k8s.io/apiserver/pkg/server/storage"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/itemcache"
	"capstan.dev/capstan/pkg/apiserver/scheme"
	"capstan.dev/capstan/test/utils/configsets"
)

func jsonInfo(t testing.TB, ns runtime.NegotiatedSerializer) runtime.SerializerInfo {
	t.Helper()
	for _, info := range ns.SupportedMediaTypes() {
		if info.MediaType == runtime.ContentTypeJSON {
			return info
		}
	}
	t.Fatal("no JSON serializer")
	return runtime.SerializerInfo{}
}

// jsonSerializer is the API server's own JSON serializer.
func jsonSerializer() runtime.Serializer {
	for _, info := range scheme.Codecs.SupportedMediaTypes() {
		if info.MediaType == runtime.ContentTypeJSON {
			return info.Serializer
		}
	}
	panic("no JSON serializer")
}

// TestListsAsEncodingJSON: lists, written in pieces when large, with items
// left to encoding/json among them, are the bytes encoding/json writes; a
// list whose metadata the encoder does not handle is the inner serializer's.
func TestListsAsEncodingJSON(t *testing.T) {
	t.Run("items encoded", func(t *testing.T) { testListsAsEncodingJSON(t, newEncoder(jsonSerializer(), nil)) })
	// Twice each, the second time with the items from the cache.
	enc := newEncoder(jsonSerializer(), itemcache.New("json", itemcache.DefaultBudget))
	t.Run("items kept", func(t *testing.T) { testListsAsEncodingJSON(t, enc) })
	if n, _ := enc.items.Size(); n == 0 {
		t.Fatal("no item kept")
	}
	t.Run("items from the cache", func(t *testing.T) { testListsAsEncodingJSON(t, enc) })
}

func testListsAsEncodingJSON(t *testing.T, enc *encoder) {
	withSpacedFields := configsets.BenchList(3)
	withSpacedFields.Items[1].ManagedFields[0].FieldsV1 = &metav1.FieldsV1{Raw: []byte(`{"f:spec": {}}`)}
	withSpacedFields.Items[1].ResourceVersion = "123457" // another version of bench-000001
	remaining := int64(7)
	paged := configsets.BenchList(2)
	paged.Continue, paged.RemainingItemCount = "next<&>", &remaining
	large := configsets.BenchList(400)
	if n := len(stdJSON(t, large)); n < 2*flushSize {
		t.Fatalf("the large list is %d bytes, want more than two pieces of %d", n, flushSize)
	}
	for name, l := range map[string]*v1beta1.ConfigSetList{
		"large":                      large,
		"item left to encoding/json": withSpacedFields,
		"paged":                      paged,
		"no items":                   {Items: []v1beta1.ConfigSet{}},
		"nil items":                  {},
	} {
		var got bytes.Buffer
		if err := enc.Encode(l, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := stdJSON(t, l); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s:\n got %.300s\nwant %.300s", name, got.Bytes(), want)
		}
	}

	sharded := configsets.BenchList(2)
	sharded.ShardInfo = &metav1.ShardInfo{Selector: "shard"}
	var got, want bytes.Buffer
	if err := enc.Encode(sharded, &got); err != nil {
		t.Fatal(err)
	}
	if err := jsonSerializer().Encode(sharded, &want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("list with shard info:\n got %.300s\nwant %.300s", got.Bytes(), want.Bytes())
	}
}

// TestNegotiatedSerializer: the group's JSON serializer, for responses and
// for watch events, encodes a ConfigSet as encoding/json encodes its
// v1beta1 form and still decodes; the other media types are untouched.
func TestNegotiatedSerializer(t *testing.T) {
	ns := NegotiatedSerializer(scheme.Codecs, itemcache.New("json", itemcache.DefaultBudget))
	info := jsonInfo(t, ns)
	if _, ok := info.Serializer.(serializer); !ok {
		t.Fatalf("JSON serializer is %T, want this package's", info.Serializer)
	}
	if info.StreamSerializer == nil {
		t.Fatal("JSON has no stream serializer")
	}
	if _, ok := info.StreamSerializer.Serializer.(serializer); !ok {
		t.Fatalf("JSON stream serializer is %T, want this package's", info.StreamSerializer.Serializer)
	}
	for i, orig := range scheme.Codecs.SupportedMediaTypes() {
		if orig.MediaType != runtime.ContentTypeJSON && ns.SupportedMediaTypes()[i].Serializer != orig.Serializer {
			t.Errorf("%s serializer replaced", orig.MediaType)
		}
	}

	internal := &config.ConfigSet{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop"},
		Spec: config.ConfigSetSpec{Data: map[string]string{"LEVEL": "<info>"}, SecretData: map[string][]byte{"TOKEN": []byte("t")}}}
	for name, s := range map[string]runtime.Serializer{"response": info.Serializer, "watch": info.StreamSerializer.Serializer} {
		var got bytes.Buffer
		if err := ns.EncoderForVersion(s, v1beta1.SchemeGroupVersion).Encode(internal, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		versioned := &v1beta1.ConfigSet{}
		if err := scheme.Scheme.Convert(internal, versioned, nil); err != nil {
			t.Fatal(err)
		}
		versioned.APIVersion, versioned.Kind = v1beta1.SchemeGroupVersion.String(), "ConfigSet"
		if want := stdJSON(t, versioned); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got.Bytes(), want)
		}
		decoded, _, err := ns.DecoderToVersion(s, config.SchemeGroupVersion).Decode(got.Bytes(), nil, nil)
		if err != nil {
			t.Fatalf("%s: decoding: %v", name, err)
		}
		if cs := decoded.(*config.ConfigSet); cs.Name != "checkout" || cs.Spec.Data["LEVEL"] != "<info>" {
			t.Errorf("%s: decoded %+v", name, cs)
		}
	}
}

// TestStorageEncoder: a storage codec whose JSON encoder StorageEncoder
// wraps stores a ConfigSet as encoding/json writes its v1beta1 form, and
// reads it back.
func TestStorageEncoder(t *testing.T) {
	codec, _, err := serverstorage.NewStorageCodec(serverstorage.StorageCodecConfig{
		StorageMediaType:   runtime.ContentTypeJSON,
		StorageSerializer:  scheme.Codecs,
		StorageVersion:     v1beta1.SchemeGroupVersion,
		MemoryVersion:      config.SchemeGroupVersion,
		EncoderDecoratorFn: StorageEncoder,
	})
	if err != nil {
		t.Fatal(err)
	}
	internal := &config.ConfigSet{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop", Labels: map[string]string{"app": "<shop>"}},
		Spec: config.ConfigSetSpec{Data: map[string]string{"LEVEL": "info"}, SecretData: map[string][]byte{"TOKEN": []byte("t")}, RevisionHistoryLimit: 10}}
	var got bytes.Buffer
	if err := codec.Encode(internal, &got); err != nil {
		t.Fatal(err)
	}
	versioned := &v1beta1.ConfigSet{}
	if err := scheme.Scheme.Convert(internal, versioned, nil); err != nil {
		t.Fatal(err)
	}
	versioned.APIVersion, versioned.Kind = v1beta1.SchemeGroupVersion.String(), "ConfigSet"
	if want := stdJSON(t, versioned); !bytes.Equal(got.Bytes(), want) {
		t.Errorf("stored\n %s\nwant %s", got.Bytes(), want)
	}
	decoded, _, err := codec.Decode(got.Bytes(), nil, &config.ConfigSet{})
	if err != nil {
		t.Fatal(err)
	}
	if cs := decoded.(*config.ConfigSet); cs.Labels["app"] != "<shop>" || string(cs.Spec.SecretData["TOKEN"]) != "t" {
		t.Errorf("read back %+v", cs)
	}
}
