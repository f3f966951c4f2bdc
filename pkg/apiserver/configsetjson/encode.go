// Package configsetjson encodes config.capstan.dev/v1beta1 ConfigSets and
// ConfigSetLists as JSON without reflection, byte for byte as encoding/json
// encodes them, decodes ConfigSets and ConfigRevisions without reflection
// (decode.go), and gives the API group and its storage codec a serializer
// that uses them.
//
// encoding/json spends most of a ConfigSet list's time on what a ConfigSet
// holds most of: the maps of entries, which it walks through reflection and
// sorts, and managedFields, whose raw JSON it scans again after FieldsV1's
// MarshalJSON returns it. Here the maps are walked directly and managedFields
// are checked by a scanner for just the grammar FieldsV1 uses. Whatever this
// encoder does not handle exactly as encoding/json would (CBOR field sets,
// raw JSON with spaces or characters encoding/json escapes, shard info on a
// list) is left to encoding/json, for the one object that has it.
package configsetjson

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// scratch holds what encoding an object needs besides its output, reused
// from object to object of a list: the sorted entries of its maps.
type scratch struct {
	strings []entry[string]
	bytes   []entry[[]byte]
}

// appendConfigSet appends cs as encoding/json encodes it, without the
// newline json.Encoder adds. It reports false, with dst unchanged, when cs
// holds something only encoding/json encodes exactly.
func appendConfigSet(dst []byte, cs *v1beta1.ConfigSet, sc *scratch) ([]byte, bool) {
	start := len(dst)
	dst = append(dst, '{')
	first := true
	dst = appendStringField(dst, &first, "kind", cs.Kind, true)
	dst = appendStringField(dst, &first, "apiVersion", cs.APIVersion, true)
	dst = appendKey(dst, &first, "metadata")
	var ok bool
	if dst, ok = appendObjectMeta(dst, &cs.ObjectMeta, sc); !ok {
		return dst[:start], false
	}
	dst = appendKey(dst, &first, "spec")
	dst = appendSpec(dst, &cs.Spec, sc)
	dst = appendKey(dst, &first, "status")
	dst = appendStatus(dst, &cs.Status)
	return append(dst, '}'), true
}

// appendListHead appends a ConfigSetList up to the opening bracket of its
// items, or reports false when its metadata needs encoding/json.
func appendListHead(dst []byte, l *v1beta1.ConfigSetList) ([]byte, bool) {
	if l.ShardInfo != nil {
		return dst, false
	}
	dst = append(dst, '{')
	first := true
	dst = appendStringField(dst, &first, "kind", l.Kind, true)
	dst = appendStringField(dst, &first, "apiVersion", l.APIVersion, true)
	dst = appendKey(dst, &first, "metadata")
	dst = append(dst, '{')
	inner := true
	dst = appendStringField(dst, &inner, "selfLink", l.SelfLink, true)
	dst = appendStringField(dst, &inner, "resourceVersion", l.ResourceVersion, true)
	dst = appendStringField(dst, &inner, "continue", l.Continue, true)
	if l.RemainingItemCount != nil {
		dst = appendKey(dst, &inner, "remainingItemCount")
		dst = strconv.AppendInt(dst, *l.RemainingItemCount, 10)
	}
	dst = append(dst, '}')
	dst = appendKey(dst, &first, "items")
	return dst, true
}

func appendObjectMeta(dst []byte, m *metav1.ObjectMeta, sc *scratch) ([]byte, bool) {
	dst = append(dst, '{')
	first := true
	dst = appendStringField(dst, &first, "name", m.Name, true)
	dst = appendStringField(dst, &first, "generateName", m.GenerateName, true)
	dst = appendStringField(dst, &first, "namespace", m.Namespace, true)
	dst = appendStringField(dst, &first, "selfLink", m.SelfLink, true)
	dst = appendStringField(dst, &first, "uid", string(m.UID), true)
	dst = appendStringField(dst, &first, "resourceVersion", m.ResourceVersion, true)
	dst = appendIntField(dst, &first, "generation", m.Generation)
	if !m.CreationTimestamp.IsZero() {
		dst = appendKey(dst, &first, "creationTimestamp")
		dst = appendTime(dst, m.CreationTimestamp)
	}
	if m.DeletionTimestamp != nil {
		dst = appendKey(dst, &first, "deletionTimestamp")
		dst = appendTime(dst, *m.DeletionTimestamp)
	}
	if m.DeletionGracePeriodSeconds != nil {
		dst = appendKey(dst, &first, "deletionGracePeriodSeconds")
		dst = strconv.AppendInt(dst, *m.DeletionGracePeriodSeconds, 10)
	}
	if len(m.Labels) > 0 {
		dst = appendKey(dst, &first, "labels")
		dst = appendStringMap(dst, m.Labels, sc)
	}
	if len(m.Annotations) > 0 {
		dst = appendKey(dst, &first, "annotations")
		dst = appendStringMap(dst, m.Annotations, sc)
	}
	if len(m.OwnerReferences) > 0 {
		dst = appendArray(appendKey(dst, &first, "ownerReferences"), m.OwnerReferences, appendOwnerReference)
	}
	if len(m.Finalizers) > 0 {
		dst = appendArray(appendKey(dst, &first, "finalizers"), m.Finalizers, func(dst []byte, f *string) []byte { return appendString(dst, *f) })
	}
	if len(m.ManagedFields) > 0 {
		dst = appendKey(dst, &first, "managedFields")
		dst = append(dst, '[')
		for i := range m.ManagedFields {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendManagedFieldsEntry(dst, &m.ManagedFields[i]); !ok {
				return dst, false
			}
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), true
}

func appendOwnerReference(dst []byte, r *metav1.OwnerReference) []byte {
	dst = append(dst, '{')
	first := true
	dst = appendStringField(dst, &first, "apiVersion", r.APIVersion, false)
	dst = appendStringField(dst, &first, "kind", r.Kind, false)
	dst = appendStringField(dst, &first, "name", r.Name, false)
	dst = appendStringField(dst, &first, "uid", string(r.UID), false)
	if r.Controller != nil {
		dst = appendKey(dst, &first, "controller")
		dst = strconv.AppendBool(dst, *r.Controller)
	}
	if r.BlockOwnerDeletion != nil {
		dst = appendKey(dst, &first, "blockOwnerDeletion")
		dst = strconv.AppendBool(dst, *r.BlockOwnerDeletion)
	}
	return append(dst, '}')
}

func appendManagedFieldsEntry(dst []byte, e *metav1.ManagedFieldsEntry) ([]byte, bool) {
	dst = append(dst, '{')
	first := true
	dst = appendStringField(dst, &first, "manager", e.Manager, true)
	dst = appendStringField(dst, &first, "operation", string(e.Operation), true)
	dst = appendStringField(dst, &first, "apiVersion", e.APIVersion, true)
	if e.Time != nil {
		dst = appendKey(dst, &first, "time")
		dst = appendTime(dst, *e.Time)
	}
	dst = appendStringField(dst, &first, "fieldsType", e.FieldsType, true)
	if e.FieldsV1 != nil {
		dst = appendKey(dst, &first, "fieldsV1")
		raw := e.FieldsV1.GetRawBytes()
		switch {
		case len(raw) == 0:
			dst = append(dst, "null"...)
		case isCompactFieldSet(raw):
			dst = append(dst, raw...)
		default:
			return dst, false
		}
	}
	dst = appendStringField(dst, &first, "subresource", e.Subresource, true)
	return append(dst, '}'), true
}

func appendSpec(dst []byte, s *v1beta1.ConfigSetSpec, sc *scratch) []byte {
	dst = append(dst, '{')
	first := true
	if len(s.Data) > 0 {
		dst = appendKey(dst, &first, "data")
		dst = appendStringMap(dst, s.Data, sc)
	}
	if len(s.SecretData) > 0 {
		dst = appendKey(dst, &first, "secretData")
		dst = appendBytesMap(dst, s.SecretData, sc)
	}
	if s.Immutable != nil {
		dst = appendKey(dst, &first, "immutable")
		dst = strconv.AppendBool(dst, *s.Immutable)
	}
	if s.RevisionHistoryLimit != nil {
		dst = appendKey(dst, &first, "revisionHistoryLimit")
		dst = strconv.AppendInt(dst, int64(*s.RevisionHistoryLimit), 10)
	}
	if s.Projection != nil {
		dst = appendKey(dst, &first, "projection")
		dst = append(dst, '{')
		inner := true
		dst = appendBoolField(dst, &inner, "perRevision", s.Projection.PerRevision)
		dst = appendBoolField(dst, &inner, "stable", s.Projection.Stable)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendStatus(dst []byte, s *v1beta1.ConfigSetStatus) []byte {
	dst = append(dst, '{')
	first := true
	dst = appendIntField(dst, &first, "currentRevision", s.CurrentRevision)
	dst = appendIntField(dst, &first, "observedGeneration", s.ObservedGeneration)
	if len(s.Conditions) > 0 {
		dst = appendArray(appendKey(dst, &first, "conditions"), s.Conditions, appendCondition)
	}
	if p := s.Projection; p != nil {
		dst = appendKey(dst, &first, "projection")
		dst = append(dst, '{')
		inner := true
		dst = appendIntField(dst, &inner, "revision", p.Revision)
		dst = appendIntField(dst, &inner, "rolloutRevision", p.RolloutRevision)
		if len(p.Consumers) > 0 {
			dst = appendArray(appendKey(dst, &inner, "consumers"), p.Consumers, appendConsumer)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendConsumer(dst []byte, c *v1beta1.ConfigSetConsumer) []byte {
	dst = append(dst, '{')
	first := true
	dst = appendStringField(dst, &first, "kind", c.Kind, false)
	dst = appendStringField(dst, &first, "name", c.Name, false)
	dst = appendIntField(dst, &first, "revision", c.Revision)
	dst = appendBoolField(dst, &first, "rolledOut", c.RolledOut)
	return append(dst, '}')
}

func appendCondition(dst []byte, c *metav1.Condition) []byte {
	dst = append(dst, '{')
	first := true
	dst = appendStringField(dst, &first, "type", c.Type, false)
	dst = appendStringField(dst, &first, "status", string(c.Status), false)
	dst = appendIntField(dst, &first, "observedGeneration", c.ObservedGeneration)
	dst = appendKey(dst, &first, "lastTransitionTime")
	dst = appendTime(dst, c.LastTransitionTime)
	dst = appendStringField(dst, &first, "reason", c.Reason, false)
	dst = appendStringField(dst, &first, "message", c.Message, false)
	return append(dst, '}')
}

// appendArray appends items as a JSON array, each with appendItem.
func appendArray[T any](dst []byte, items []T, appendItem func([]byte, *T) []byte) []byte {
	dst = append(dst, '[')
	for i := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendItem(dst, &items[i])
	}
	return append(dst, ']')
}

// appendKey appends the separator before a field, unless it is the first,
// and the field's name. Names are ASCII letters: nothing to escape.
func appendKey(dst []byte, first *bool, name string) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}

func appendStringField(dst []byte, first *bool, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return dst
	}
	return appendString(appendKey(dst, first, name), v)
}

// appendIntField appends a field tagged omitempty: only when not zero.
func appendIntField(dst []byte, first *bool, name string, v int64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendInt(appendKey(dst, first, name), v, 10)
}

// appendBoolField appends a field tagged omitempty: only when true.
func appendBoolField(dst []byte, first *bool, name string, v bool) []byte {
	if !v {
		return dst
	}
	return append(appendKey(dst, first, name), "true"...)
}

// appendTime appends t as metav1.Time's MarshalJSON writes it.
func appendTime(dst []byte, t metav1.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339)
	return append(dst, '"')
}

// appendStringMap appends m with its keys in order, as encoding/json does.
func appendStringMap(dst []byte, m map[string]string, sc *scratch) []byte {
	dst = append(dst, '{')
	sc.strings = sortedEntries(sc.strings[:0], m)
	for i, e := range sc.strings {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, e.key)
		dst = append(dst, ':')
		dst = appendString(dst, e.value)
	}
	return append(dst, '}')
}

// appendBytesMap appends m with its keys in order and its values in
// standard base64, as encoding/json does; a nil value is null.
func appendBytesMap(dst []byte, m map[string][]byte, sc *scratch) []byte {
	dst = append(dst, '{')
	sc.bytes = sortedEntries(sc.bytes[:0], m)
	for i, e := range sc.bytes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, e.key)
		dst = append(dst, ':')
		if e.value == nil {
			dst = append(dst, "null"...)
			continue
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, e.value)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

type entry[V any] struct {
	key   string
	value V
}

// sortedEntries appends m's entries to entries and orders them by key.
func sortedEntries[V any](entries []entry[V], m map[string]V) []entry[V] {
	for k, v := range m {
		entries = append(entries, entry[V]{k, v})
	}
	slices.SortFunc(entries, func(a, b entry[V]) int { return strings.Compare(a.key, b.key) })
	return entries
}

const hexDigits = "0123456789abcdef"

// plain holds the bytes a JSON string carries as they are: printable ASCII
// but for the quote, the backslash and what encoding/json escapes for HTML.
var plain = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// appendString appends s as a JSON string the way encoding/json does with
// HTML escaping on (its default): <, > and & as \u003c, \u003e and \u0026,
// the other control characters short where JSON has a short form, invalid
// UTF-8 as \ufffd, and U+2028 and U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		for i < len(s) && plain[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		b := s[i]
		if b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// isCompactFieldSet reports whether raw is a FieldsV1 set that encoding/json
// would copy unchanged: an object whose values are all objects, with no
// space, and no byte outside printable ASCII or that encoding/json escapes
// (<, >, &). The server's field manager writes every set it stores this way.
func isCompactFieldSet(raw []byte) bool {
	i, ok := scanFieldSetObject(raw, 0, 0)
	return ok && i == len(raw)
}

// maxFieldSetDepth bounds the scanner's recursion; a deeper set is left to
// encoding/json.
const maxFieldSetDepth = 64

func scanFieldSetObject(raw []byte, i, depth int) (int, bool) {
	if depth > maxFieldSetDepth || i >= len(raw) || raw[i] != '{' {
		return i, false
	}
	i++
	if i < len(raw) && raw[i] == '}' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = scanFieldSetKey(raw, i); !ok {
			return i, false
		}
		if i >= len(raw) || raw[i] != ':' {
			return i, false
		}
		if i, ok = scanFieldSetObject(raw, i+1, depth+1); !ok {
			return i, false
		}
		if i >= len(raw) {
			return i, false
		}
		switch raw[i] {
		case ',':
			i++
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanFieldSetKey scans a JSON string of printable ASCII whose escapes are
// \" and \\ only, the ones field sets' keys (such as k:{"name":"x"}) carry.
func scanFieldSetKey(raw []byte, i int) (int, bool) {
	if i >= len(raw) || raw[i] != '"' {
		return i, false
	}
	for i++; i < len(raw); i++ {
		switch b := raw[i]; {
		case b == '"':
			return i + 1, true
		case b == '\\':
			if i+1 >= len(raw) || (raw[i+1] != '"' && raw[i+1] != '\\') {
				return i, false
			}
			i++
		case b < 0x20 || b >= utf8.RuneSelf || b == '<' || b == '>' || b == '&':
			return i, false
		}
	}
	return i, false
}

// appendItemFallback appends cs as encoding/json encodes it.
func appendItemFallback(dst []byte, cs *v1beta1.ConfigSet) ([]byte, error) {
	b, err := json.Marshal(cs)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
