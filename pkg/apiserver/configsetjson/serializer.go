package configsetjson

import (
	"io"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// NegotiatedSerializer returns ns with its JSON serializer, the one responses
// and watch events are encoded with, replaced by one that encodes v1beta1
// ConfigSets and ConfigSetLists with this package and everything else as ns
// does. Decoding, the pretty and YAML forms and the other media types are
// ns's own. The items of lists are kept encoded between lists (itemCache).
func NegotiatedSerializer(ns runtime.NegotiatedSerializer) runtime.NegotiatedSerializer {
	registerMetrics()
	return negotiatedSerializer(ns, newItemCache(defaultItemCacheBudget))
}

func negotiatedSerializer(ns runtime.NegotiatedSerializer, items *itemCache) runtime.NegotiatedSerializer {
	infos := append([]runtime.SerializerInfo(nil), ns.SupportedMediaTypes()...)
	for i := range infos {
		if infos[i].MediaType != runtime.ContentTypeJSON {
			continue
		}
		infos[i].Serializer = newSerializer(infos[i].Serializer, items)
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
	items *itemCache
}

func newEncoder(e runtime.Encoder, items *itemCache) *encoder {
	return &encoder{inner: e, id: runtime.Identifier("configsetjson:" + string(e.Identifier())), items: items}
}

// serializer is a JSON serializer that encodes with encoder and decodes as
// the serializer it wraps.
type serializer struct {
	runtime.Decoder
	*encoder
}

func newSerializer(s runtime.Serializer, items *itemCache) serializer {
	return serializer{Decoder: s, encoder: newEncoder(s, items)}
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
func appendItems(b []byte, items []v1beta1.ConfigSet, cache *itemCache, w io.Writer) ([]byte, error) {
	if items == nil {
		return append(b, "null}\n"...), nil
	}
	b = append(b, '[')
	var sc scratch
	var hits, misses int
	if cache != nil {
		defer func() { recordLookups(hits, misses) }()
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
		} else if encoded, ok := cache.get(&items[i]); ok {
			hits++
			b = append(b, encoded...)
		} else {
			misses++
			start := len(b)
			var err error
			if b, err = appendItem(b, &items[i], &sc); err != nil {
				return b, err
			}
			cache.put(&items[i], b[start:])
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
