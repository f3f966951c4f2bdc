// Package configsetproto writes protobuf lists of v1beta1 ConfigSets with
// their items kept encoded between lists (an itemcache.Cache of format
// "protobuf"): the bytes k8s.io/apimachinery's protobuf serializer writes,
// without marshalling again an item that has not changed since the last
// list. Capstan's generated clientset, and so its informers, ask for
// protobuf. Everything else, and decoding, is the wrapped serializer's.
package configsetproto

import (
	"bufio"
	"encoding/binary"
	"io"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/apiserver/itemcache"
)

// NegotiatedSerializer returns ns with its protobuf serializer, the one
// responses are encoded with, wrapped so that v1beta1 ConfigSetLists are
// written with their items kept encoded in items, a cache of this format.
// Watch events and the other media types are ns's own.
func NegotiatedSerializer(ns runtime.NegotiatedSerializer, items *itemcache.Cache) runtime.NegotiatedSerializer {
	infos := append([]runtime.SerializerInfo(nil), ns.SupportedMediaTypes()...)
	for i := range infos {
		if infos[i].MediaType == runtime.ContentTypeProtobuf {
			infos[i].Serializer = newSerializer(infos[i].Serializer, items)
		}
	}
	return negotiated{NegotiatedSerializer: ns, infos: infos}
}

type negotiated struct {
	runtime.NegotiatedSerializer
	infos []runtime.SerializerInfo
}

func (n negotiated) SupportedMediaTypes() []runtime.SerializerInfo { return n.infos }

// serializer encodes ConfigSetLists with encodeList and everything else, and
// decodes, with the protobuf serializer it wraps.
type serializer struct {
	runtime.Serializer
	id    runtime.Identifier
	items *itemcache.Cache
}

func newSerializer(s runtime.Serializer, items *itemcache.Cache) *serializer {
	return &serializer{Serializer: s, id: runtime.Identifier("configsetproto:" + string(s.Identifier())), items: items}
}

// Identifier names the output for the caches of encoded objects: the bytes
// equal the inner serializer's, but they are not made by it.
func (s *serializer) Identifier() runtime.Identifier { return s.id }

func (s *serializer) Encode(obj runtime.Object, w io.Writer) error {
	if l, ok := obj.(*v1beta1.ConfigSetList); ok {
		return s.encodeList(l, w)
	}
	return s.Serializer.Encode(obj, w)
}

// EncodeWithAllocator lets what is not a ConfigSetList keep the allocator
// the versioning codec gives the protobuf serializer.
func (s *serializer) EncodeWithAllocator(obj runtime.Object, w io.Writer, a runtime.MemoryAllocator) error {
	if l, ok := obj.(*v1beta1.ConfigSetList); ok {
		return s.encodeList(l, w)
	}
	if e, ok := s.Serializer.(runtime.EncoderWithAllocator); ok {
		return e.EncodeWithAllocator(obj, w, a)
	}
	return s.Serializer.Encode(obj, w)
}

// Protobuf's framing of a list response (k8s.io/apimachinery's
// serializer/protobuf): the 4-byte prefix, then a runtime.Unknown whose raw
// field holds the list, a message of ListMeta (field 1) and the items (field
// 2, repeated), each length-delimited.
var prefix = []byte{0x6b, 0x38, 0x73, 0x00}

const (
	listMetaTag = 1<<3 | 2
	itemTag     = 2<<3 | 2
	// flushSize is how much of a list is gathered before it is written.
	flushSize = 256 << 10
)

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, flushSize) }}

// encodeList writes l as the protobuf serializer does, each item taken from
// the cache or marshalled and kept in it.
func (s *serializer) encodeList(l *v1beta1.ConfigSetList, w io.Writer) error {
	gvk := l.GetObjectKind().GroupVersionKind()
	listMeta, err := l.ListMeta.Marshal()
	if err != nil {
		return err
	}
	items := make([][]byte, len(l.Items))
	size := fieldSize(len(listMeta))
	var hits, misses int
	for i := range l.Items {
		cs := &l.Items[i]
		if b, ok := s.items.Get(cs); ok {
			hits++
			items[i] = b
		} else {
			misses++
			if items[i], err = cs.Marshal(); err != nil {
				return err
			}
			s.items.Put(cs, items[i])
		}
		size += fieldSize(len(items[i]))
	}
	s.items.Record(hits, misses)

	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		writers.Put(bw)
	}()
	if _, err := bw.Write(prefix); err != nil {
		return err
	}
	unk := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind}}
	head := make([]byte, 1+binary.MaxVarintLen64)
	if _, err := unk.MarshalToWriter(bw, size, func(w io.Writer) (int, error) {
		n, err := writeField(w, head, listMetaTag, listMeta)
		if err != nil {
			return n, err
		}
		for _, item := range items {
			m, err := writeField(w, head, itemTag, item)
			n += m
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}); err != nil {
		return err
	}
	return bw.Flush()
}

// fieldSize is the size of a length-delimited field of n bytes: its tag,
// its length and itself.
func fieldSize(n int) int {
	var b [binary.MaxVarintLen64]byte
	return 1 + binary.PutUvarint(b[:], uint64(n)) + n
}

// writeField writes a length-delimited field, its tag and length through
// head, a scratch buffer of 1+binary.MaxVarintLen64 bytes.
func writeField(w io.Writer, head []byte, tag byte, data []byte) (int, error) {
	head[0] = tag
	n := 1 + binary.PutUvarint(head[1:], uint64(len(data)))
	if _, err := w.Write(head[:n]); err != nil {
		return 0, err
	}
	m, err := w.Write(data)
	return n + m, err
}
