package configsetjson

import (
	"bytes"
	"io"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/recognizer"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/itemcache"
)

// NegotiatedSerializer returns ns with its JSON serializer, the one responses
// and watch events are encoded with, replaced by one that encodes v1beta1
// ConfigSets and ConfigSetLists with this package and everything else as ns
// does, and with its JSON serializers decoding ConfigSets and ConfigRevisions
// with decodeObject. The pretty and YAML forms and the other media types are
// ns's own. The items of lists are kept encoded between lists in items, a
// cache of this format.
func NegotiatedSerializer(ns runtime.NegotiatedSerializer, items *itemcache.Cache) runtime.NegotiatedSerializer {
	infos := append([]runtime.SerializerInfo(nil), ns.SupportedMediaTypes()...)
	for i := range infos {
		if infos[i].MediaType != runtime.ContentTypeJSON {
			continue
		}
		infos[i].Serializer = newSerializer(infos[i].Serializer, items)
		if strict := infos[i].StrictSerializer; strict != nil {
			infos[i].StrictSerializer = strictSerializer{Serializer: strict}
		}
		if s := infos[i].StreamSerializer; s != nil {
			stream := *s
			stream.Serializer = newSerializer(stream.Serializer, items)
			infos[i].StreamSerializer = &stream
		}
	}
	return negotiated{NegotiatedSerializer: ns, infos: infos}
}

// StorageEncoder wraps the JSON encoder of the storage codec (an
// EncoderDecoratorFn of k8s.io/apiserver's StorageCodecConfig when the
// storage media type is JSON): a ConfigSet is encoded once per create and
// twice per update (the object the update starts from, to tell a no-op).
func StorageEncoder(e runtime.Encoder) runtime.Encoder { return newEncoder(e, nil) }

// StorageDecoders gives the storage codec's JSON decoder, the first of ds
// when the storage media type is JSON (a DecoderDecoratorFn of
// StorageCodecConfig), decodeObject's reading of ConfigSets and
// ConfigRevisions. The other decoders are left as they are.
func StorageDecoders(ds []runtime.Decoder) []runtime.Decoder {
	out := slices.Clone(ds)
	if len(out) > 0 {
		out[0] = decoder{inner: out[0]}
	}
	return out
}

// decoder decodes ConfigSets and ConfigRevisions with decodeObject, and
// what decodeObject leaves, everything else, and into any other object, as
// the decoder it wraps. Decoded into nothing or into an internal object, the
// JSON serializer makes a new v1beta1 object of the data's kind, as
// decodeObject does; into anything else it behaves otherwise.
type decoder struct {
	inner runtime.Decoder
}

func (d decoder) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	switch into.(type) {
	case nil, *config.ConfigSet, *config.ConfigRevision:
		if obj, gvk := decodeObject(data); obj != nil {
			return obj, gvk, nil
		}
	}
	return d.inner.Decode(data, defaults, into)
}

// RecognizesData answers for the decoder it wraps, so that the storage
// codec's recognizer goes on choosing it for the same data.
func (d decoder) RecognizesData(data []byte) (ok, unknown bool, err error) {
	if r, isRecognizer := d.inner.(recognizer.RecognizingDecoder); isRecognizer {
		return r.RecognizesData(data)
	}
	return false, true, nil
}

type negotiated struct {
	runtime.NegotiatedSerializer
	infos []runtime.SerializerInfo
}

func (n negotiated) SupportedMediaTypes() []runtime.SerializerInfo { return n.infos }

// encoder is a JSON encoder whose Encode writes ConfigSets and their lists
// with appendConfigSet, and everything else with the encoder it wraps. With
// items, a list's items are taken from and kept in it.
type encoder struct {
	inner runtime.Encoder
	id    runtime.Identifier
	items *itemcache.Cache
}

func newEncoder(e runtime.Encoder, items *itemcache.Cache) *encoder {
	return &encoder{inner: e, id: runtime.Identifier("configsetjson:" + string(e.Identifier())), items: items}
}

// serializer is a JSON serializer that encodes with encoder and decodes
// with decoder.
type serializer struct {
	decoder
	*encoder
}

func newSerializer(s runtime.Serializer, items *itemcache.Cache) serializer {
	return serializer{decoder: decoder{inner: s}, encoder: newEncoder(s, items)}
}

// strictSerializer is the strict JSON serializer requests are decoded with
// unless they ask for no field validation; its Decode goes through decoder,
// which reads no document the strict serializer would warn about or refuse
// (unknown fields, fields or keys given twice).
type strictSerializer struct {
	runtime.Serializer
}

func (s strictSerializer) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	return decoder{inner: s.Serializer}.Decode(data, defaults, into)
}

// Identifier names the output for the caches of encoded watch events: the
// bytes equal the inner serializer's, but they are not made by it.
func (e *encoder) Identifier() runtime.Identifier { return e.id }

func (e *encoder) Encode(obj runtime.Object, w io.Writer) error {
	if co, ok := obj.(runtime.CacheableObject); ok {
		return co.CacheEncode(e.id, e.doEncode, w)
	}
	return e.doEncode(obj, w)
}

func (e *encoder) doEncode(obj runtime.Object, w io.Writer) error {
	switch o := obj.(type) {
	case *v1beta1.ConfigSet:
		buf := getBuffer()
		defer putBuffer(buf)
		b, ok := appendConfigSet((*buf)[:0], o, &scratch{})
		if !ok {
			break
		}
		*buf = append(b, '\n')
		_, err := w.Write(*buf)
		return err
	case *v1beta1.ConfigSetList:
		buf := getBuffer()
		defer putBuffer(buf)
		b, ok := appendListHead((*buf)[:0], o)
		if !ok {
			break
		}
		var err error
		*buf, err = appendItems(b, o.Items, e.items, w)
		if err != nil {
			return err
		}
		_, err = w.Write(*buf)
		return err
	}
	return e.inner.Encode(obj, w)
}

// flushSize is how much of a list is encoded before it is written: a list
// is written in pieces, as k8s.io/apimachinery's streaming list encoding
// does, rather than held whole.
const flushSize = 256 << 10

// appendItems appends a list's items, the list's closing brace and the
// encoder's newline, writing to w whenever flushSize has been encoded, and
// returns what is left to write. Items found in cache, when there is one,
// are copied from it; the others are encoded and kept in it.
func appendItems(b []byte, items []v1beta1.ConfigSet, cache *itemcache.Cache, w io.Writer) ([]byte, error) {
	if items == nil {
		return append(b, "null}\n"...), nil
	}
	b = append(b, '[')
	var sc scratch
	var hits, misses int
	if cache != nil {
		defer func() { cache.Record(hits, misses) }()
	}
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		if cache == nil {
			var err error
			if b, err = appendItem(b, &items[i], &sc); err != nil {
				return b, err
			}
		} else if encoded, ok := cache.Get(&items[i]); ok {
			hits++
			b = append(b, encoded...)
		} else {
			misses++
			start := len(b)
			var err error
			if b, err = appendItem(b, &items[i], &sc); err != nil {
				return b, err
			}
			cache.Put(&items[i], bytes.Clone(b[start:]))
		}
		if len(b) >= flushSize {
			if _, err := w.Write(b); err != nil {
				return b, err
			}
			b = b[:0]
		}
	}
	return append(b, "]}\n"...), nil
}

// appendItem appends one item of a list.
func appendItem(b []byte, cs *v1beta1.ConfigSet, sc *scratch) ([]byte, error) {
	if b, ok := appendConfigSet(b, cs, sc); ok {
		return b, nil
	}
	return appendItemFallback(b, cs)
}

// maxPooledBuffer bounds the buffers kept for reuse.
const maxPooledBuffer = 2 * flushSize

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) <= maxPooledBuffer {
		*b = (*b)[:0]
		buffers.Put(b)
	}
}
