package configsetjson

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// Decoding. Every ConfigSet and ConfigRevision a write stores is decoded
// again, more than once: from the bytes the write stored, and from each
// watch event etcd sends the watch cache. k8s.io/apimachinery's JSON
// serializer reads such an object three times: encoding/json finds its kind
// (scanning the whole object to validate it, then again to decode the two
// fields), and sigs.k8s.io/json validates it again and decodes it through
// reflection. decodeObject reads it once.
//
// It reads what the storage codec's serializer (case-sensitive, unknown
// fields ignored) reads, into the same object, and gives up on anything it
// does not read exactly as that serializer would: a field it does not know
// or that appears twice (encoding/json would ignore the one and merge the
// other), a number that is not a plain integer in range, a key with escapes,
// a kind or apiVersion other than v1beta1 ConfigSet's or ConfigRevision's,
// JSON that is not valid. The serializer then decodes the object, and its
// result or error stands. Objects the server stored (configsetjson and
// encoding/json write them) hold none of these.

// maxSkipDepth bounds the nesting of the one value read without a type,
// managedFields' field set; deeper sets are left to the serializer.
const maxSkipDepth = 1000

var (
	configSetGVK      = v1beta1.SchemeGroupVersion.WithKind("ConfigSet")
	configRevisionGVK = v1beta1.SchemeGroupVersion.WithKind("ConfigRevision")
)

// decodeObject decodes data as a v1beta1 ConfigSet or ConfigRevision, or
// returns nil when the serializer must.
func decodeObject(data []byte) (runtime.Object, *schema.GroupVersionKind) {
	r := reader{data: data}
	// The kind decides the type the other fields are read into: it must
	// come first, or second after the apiVersion. The server's encoders
	// write it first, client-go's dynamic client and kubectl second.
	var (
		obj        runtime.Object
		apiVersion string
		gvk        schema.GroupVersionKind
		seen       uint64 // the fields read before the type was known
		ok         bool
	)
	if !r.consume('{') {
		return nil, nil
	}
	if r.key("apiVersion") {
		if apiVersion, ok = r.plainString(); !ok || !r.consume(',') {
			return nil, nil
		}
		seen = 1 // apiVersion, the first of each type's fields
	}
	if !r.key("kind") {
		return nil, nil
	}
	kind, ok := r.plainString()
	if !ok || !r.consume(',') {
		return nil, nil
	}
	switch kind {
	case "ConfigSet":
		cs := &v1beta1.ConfigSet{}
		cs.Kind, obj, gvk = kind, cs, configSetGVK
		ok = r.members(configSetFields, seen, func(name string) bool {
			var ok bool
			switch name {
			case "apiVersion":
				apiVersion, ok = r.str()
			case "metadata":
				ok = r.objectMeta(&cs.ObjectMeta)
			case "spec":
				ok = r.configSetSpec(&cs.Spec)
			case "status":
				ok = r.configSetStatus(&cs.Status)
			}
			return ok
		})
		cs.APIVersion = apiVersion
	case "ConfigRevision":
		rev := &v1beta1.ConfigRevision{}
		rev.Kind, obj, gvk = kind, rev, configRevisionGVK
		ok = r.members(configRevisionFields, seen, func(name string) bool {
			var ok bool
			switch name {
			case "apiVersion":
				apiVersion, ok = r.str()
			case "metadata":
				ok = r.objectMeta(&rev.ObjectMeta)
			case "configSetName":
				rev.ConfigSetName, ok = r.str()
			case "revision":
				rev.Revision, ok = r.integer(64)
			case "data":
				rev.Data, ok = r.stringMap()
			case "secretData":
				rev.SecretData, ok = r.bytesMap()
			case "author":
				rev.Author, ok = r.str()
			case "changeCause":
				rev.ChangeCause, ok = r.str()
			case "rollbackOf":
				rev.RollbackOf, ok = r.integer(64)
			}
			return ok
		})
		rev.APIVersion = apiVersion
	default:
		return nil, nil
	}
	if !ok || apiVersion != gvk.GroupVersion().String() || !r.atEnd() {
		return nil, nil
	}
	return obj, &gvk
}

// The fields of each type, as encoding/json names them. The kind of the
// top-level objects is read before the others, and is not among them; their
// apiVersion is the first, as it may be read before the kind.
var (
	configSetFields      = []string{"apiVersion", "metadata", "spec", "status"}
	configRevisionFields = []string{"apiVersion", "metadata", "configSetName", "revision", "data", "secretData", "author", "changeCause", "rollbackOf"}
	objectMetaFields     = []string{"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
		"creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
		"finalizers", "managedFields"}
	ownerReferenceFields = []string{"apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion"}
	managedFieldsFields  = []string{"manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource"}
	specFields           = []string{"data", "secretData", "immutable", "revisionHistoryLimit", "projection"}
	projectionFields     = []string{"perRevision", "stable"}
	statusFields         = []string{"currentRevision", "observedGeneration", "conditions", "projection"}
	projectionStatFields = []string{"revision", "rolloutRevision", "consumers"}
	consumerFields       = []string{"kind", "name", "revision", "rolledOut"}
	conditionFields      = []string{"type", "status", "observedGeneration", "lastTransitionTime", "reason", "message"}
)

func (r *reader) objectMeta(m *metav1.ObjectMeta) bool {
	return r.object(objectMetaFields, func(name string) bool {
		var ok bool
		switch name {
		case "name":
			m.Name, ok = r.str()
		case "generateName":
			m.GenerateName, ok = r.str()
		case "namespace":
			m.Namespace, ok = r.str()
		case "selfLink":
			m.SelfLink, ok = r.str()
		case "uid":
			var uid string
			uid, ok = r.str()
			m.UID = types.UID(uid)
		case "resourceVersion":
			m.ResourceVersion, ok = r.str()
		case "generation":
			m.Generation, ok = r.integer(64)
		case "creationTimestamp":
			ok = r.time(&m.CreationTimestamp)
		case "deletionTimestamp":
			m.DeletionTimestamp, ok = pointer(r, r.time)
		case "deletionGracePeriodSeconds":
			m.DeletionGracePeriodSeconds, ok = pointer(r, func(v *int64) (ok bool) { *v, ok = r.integer(64); return ok })
		case "labels":
			m.Labels, ok = r.stringMap()
		case "annotations":
			m.Annotations, ok = r.stringMap()
		case "ownerReferences":
			m.OwnerReferences, ok = array(r, r.ownerReference)
		case "finalizers":
			m.Finalizers, ok = array(r, func(s *string) (ok bool) { *s, ok = r.str(); return ok })
		case "managedFields":
			m.ManagedFields, ok = array(r, r.managedFieldsEntry)
		}
		return ok
	})
}

func (r *reader) ownerReference(o *metav1.OwnerReference) bool {
	return r.object(ownerReferenceFields, func(name string) bool {
		var ok bool
		switch name {
		case "apiVersion":
			o.APIVersion, ok = r.str()
		case "kind":
			o.Kind, ok = r.str()
		case "name":
			o.Name, ok = r.str()
		case "uid":
			var uid string
			uid, ok = r.str()
			o.UID = types.UID(uid)
		case "controller":
			o.Controller, ok = pointer(r, r.boolean)
		case "blockOwnerDeletion":
			o.BlockOwnerDeletion, ok = pointer(r, r.boolean)
		}
		return ok
	})
}

func (r *reader) managedFieldsEntry(e *metav1.ManagedFieldsEntry) bool {
	return r.object(managedFieldsFields, func(name string) bool {
		var ok bool
		switch name {
		case "manager":
			e.Manager, ok = r.str()
		case "operation":
			var op string
			op, ok = r.str()
			e.Operation = metav1.ManagedFieldsOperationType(op)
		case "apiVersion":
			e.APIVersion, ok = r.str()
		case "time":
			e.Time, ok = pointer(r, r.time)
		case "fieldsType":
			e.FieldsType, ok = r.str()
		case "fieldsV1":
			e.FieldsV1, ok = pointer(r, r.fieldsV1)
		case "subresource":
			e.Subresource, ok = r.str()
		}
		return ok
	})
}

func (r *reader) configSetSpec(s *v1beta1.ConfigSetSpec) bool {
	return r.object(specFields, func(name string) bool {
		var ok bool
		switch name {
		case "data":
			s.Data, ok = r.stringMap()
		case "secretData":
			s.SecretData, ok = r.bytesMap()
		case "immutable":
			s.Immutable, ok = pointer(r, r.boolean)
		case "revisionHistoryLimit":
			s.RevisionHistoryLimit, ok = pointer(r, func(v *int32) bool {
				n, ok := r.integer(32)
				*v = int32(n)
				return ok
			})
		case "projection":
			s.Projection, ok = pointer(r, r.projection)
		}
		return ok
	})
}

func (r *reader) projection(p *v1beta1.ConfigSetProjection) bool {
	return r.object(projectionFields, func(name string) bool {
		var ok bool
		switch name {
		case "perRevision":
			ok = r.boolean(&p.PerRevision)
		case "stable":
			ok = r.boolean(&p.Stable)
		}
		return ok
	})
}

func (r *reader) configSetStatus(s *v1beta1.ConfigSetStatus) bool {
	return r.object(statusFields, func(name string) bool {
		var ok bool
		switch name {
		case "currentRevision":
			s.CurrentRevision, ok = r.integer(64)
		case "observedGeneration":
			s.ObservedGeneration, ok = r.integer(64)
		case "conditions":
			s.Conditions, ok = array(r, r.condition)
		case "projection":
			s.Projection, ok = pointer(r, r.projectionStatus)
		}
		return ok
	})
}

func (r *reader) projectionStatus(p *v1beta1.ConfigSetProjectionStatus) bool {
	return r.object(projectionStatFields, func(name string) bool {
		var ok bool
		switch name {
		case "revision":
			p.Revision, ok = r.integer(64)
		case "rolloutRevision":
			p.RolloutRevision, ok = r.integer(64)
		case "consumers":
			p.Consumers, ok = array(r, r.consumer)
		}
		return ok
	})
}

func (r *reader) consumer(c *v1beta1.ConfigSetConsumer) bool {
	return r.object(consumerFields, func(name string) bool {
		var ok bool
		switch name {
		case "kind":
			c.Kind, ok = r.str()
		case "name":
			c.Name, ok = r.str()
		case "revision":
			c.Revision, ok = r.integer(64)
		case "rolledOut":
			ok = r.boolean(&c.RolledOut)
		}
		return ok
	})
}

func (r *reader) condition(c *metav1.Condition) bool {
	return r.object(conditionFields, func(name string) bool {
		var ok bool
		switch name {
		case "type":
			c.Type, ok = r.str()
		case "status":
			var s string
			s, ok = r.str()
			c.Status = metav1.ConditionStatus(s)
		case "observedGeneration":
			c.ObservedGeneration, ok = r.integer(64)
		case "lastTransitionTime":
			ok = r.time(&c.LastTransitionTime)
		case "reason":
			c.Reason, ok = r.str()
		case "message":
			c.Message, ok = r.str()
		}
		return ok
	})
}

// reader reads one JSON document. Its methods report false for anything
// they do not read as the serializer would; the document is then left to it.
type reader struct {
	data []byte
	i    int
}

// peek skips white space and returns the byte after it, 0 at the end.
func (r *reader) peek() byte {
	for r.i < len(r.data) {
		switch c := r.data[r.i]; c {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return c
		}
	}
	return 0
}

// consume reads c if it comes next.
func (r *reader) consume(c byte) bool {
	if r.peek() == c {
		r.i++
		return true
	}
	return false
}

// literal reads lit (null, true or false) if it comes next. A letter right
// after it is caught by whatever reads next: only a separator may follow.
func (r *reader) literal(lit string) bool {
	r.peek()
	if len(r.data)-r.i >= len(lit) && string(r.data[r.i:r.i+len(lit)]) == lit {
		r.i += len(lit)
		return true
	}
	return false
}

// atEnd reports whether only white space is left.
func (r *reader) atEnd() bool { return r.peek() == 0 && r.i == len(r.data) }

// key reads the key name and its colon if they come next.
func (r *reader) key(name string) bool {
	at := r.i
	start, end, plain, ok := r.stringSpan()
	if ok && plain && string(r.data[start:end]) == name && r.consume(':') {
		return true
	}
	r.i = at
	return false
}

// object reads an object of the given fields, calling field with the
// reader at each one's value; null leaves the struct as it is (zero: the
// reader fills new objects only).
func (r *reader) object(names []string, field func(name string) bool) bool {
	if r.literal("null") {
		return true
	}
	if !r.consume('{') {
		return false
	}
	if r.consume('}') {
		return true
	}
	return r.members(names, 0, field)
}

// members reads fields up to the object's closing brace. A field not in
// names, or one seen before (seen has a bit for each of names read), gives up.
func (r *reader) members(names []string, seen uint64, field func(name string) bool) bool {
	for {
		start, end, plain, ok := r.stringSpan()
		if !ok || !plain || !r.consume(':') {
			return false
		}
		i := indexOf(names, r.data[start:end])
		if i < 0 || seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		if !field(names[i]) {
			return false
		}
		if r.consume(',') {
			continue
		}
		return r.consume('}')
	}
}

func indexOf(names []string, key []byte) int {
	for i, n := range names {
		if n == string(key) {
			return i
		}
	}
	return -1
}

// stringSpan reads a string and returns where its contents start and end,
// and whether they are plain: no escapes, and valid UTF-8, so that they are
// the string's value as they are. The escapes are checked.
func (r *reader) stringSpan() (start, end int, plain, ok bool) {
	if r.peek() != '"' {
		return 0, 0, false, false
	}
	r.i++
	start = r.i
	escaped, high := false, false
	for r.i < len(r.data) {
		switch c := r.data[r.i]; {
		case c == '"':
			end = r.i
			r.i++
			plain = !escaped && (!high || utf8.Valid(r.data[start:end]))
			return start, end, plain, true
		case c == '\\':
			escaped = true
			if !r.escape() {
				return 0, 0, false, false
			}
		case c < 0x20:
			return 0, 0, false, false
		case c >= utf8.RuneSelf:
			high = true
			r.i++
		default:
			r.i++
		}
	}
	return 0, 0, false, false
}

// escape reads a backslash escape JSON allows.
func (r *reader) escape() bool {
	if r.i+1 >= len(r.data) {
		return false
	}
	switch r.data[r.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		r.i += 2
		return true
	case 'u':
		if r.i+6 > len(r.data) {
			return false
		}
		for _, h := range r.data[r.i+2 : r.i+6] {
			if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
				return false
			}
		}
		r.i += 6
		return true
	}
	return false
}

// plainString reads a string without escapes.
func (r *reader) plainString() (string, bool) {
	start, end, plain, ok := r.stringSpan()
	if !ok || !plain {
		return "", false
	}
	return string(r.data[start:end]), true
}

// stringValue reads a string: a plain one as it is, one with escapes or
// invalid UTF-8 as encoding/json unquotes it.
func (r *reader) stringValue() (string, bool) {
	start, end, plain, ok := r.stringSpan()
	if !ok {
		return "", false
	}
	if plain {
		return string(r.data[start:end]), true
	}
	return r.unquote(start, end)
}

// unquote returns the value of the string whose contents stringSpan found
// between start and end, unquoted by encoding/json.
func (r *reader) unquote(start, end int) (string, bool) {
	var s string
	err := json.Unmarshal(r.data[start-1:end+1], &s)
	return s, err == nil
}

// str reads a string field or map value; null leaves it empty.
func (r *reader) str() (string, bool) {
	if r.literal("null") {
		return "", true
	}
	return r.stringValue()
}

// integer reads an integer that fits in bits; null is zero. A fraction or
// an exponent gives up: encoding/json refuses them for integer fields.
func (r *reader) integer(bits int) (int64, bool) {
	if r.literal("null") {
		return 0, true
	}
	start := r.i
	if r.i < len(r.data) && r.data[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.data) && '0' <= r.data[r.i] && r.data[r.i] <= '9' {
		r.i++
	}
	if r.i == digits || (r.data[digits] == '0' && r.i-digits > 1) {
		return 0, false
	}
	if r.i < len(r.data) && (r.data[r.i] == '.' || r.data[r.i] == 'e' || r.data[r.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(r.data[start:r.i]), 10, bits)
	return n, err == nil
}

// boolean reads true or false into b; null leaves it false.
func (r *reader) boolean(b *bool) bool {
	switch {
	case r.literal("true"):
		*b = true
	case r.literal("false"), r.literal("null"):
		*b = false
	default:
		return false
	}
	return true
}

// time reads a time as metav1.Time's UnmarshalJSON does.
func (r *reader) time(t *metav1.Time) bool {
	if r.literal("null") {
		*t = metav1.Time{}
		return true
	}
	start, end, plain, ok := r.stringSpan()
	if !ok {
		return false
	}
	if !plain {
		return t.UnmarshalJSON(r.data[start-1:end+1]) == nil
	}
	pt, err := time.Parse(time.RFC3339, string(r.data[start:end]))
	if err != nil {
		return false
	}
	t.Time = pt.Local()
	return true
}

// fieldsV1 hands the raw value to FieldsV1's UnmarshalJSON, as encoding/json
// does, once it has checked that it is JSON.
func (r *reader) fieldsV1(f *metav1.FieldsV1) bool {
	r.peek()
	start := r.i
	if !r.skip(0) {
		return false
	}
	return f.UnmarshalJSON(r.data[start:r.i]) == nil
}

// skip reads any JSON value, checking it as encoding/json does (which lets
// invalid UTF-8 through in strings).
func (r *reader) skip(depth int) bool {
	if depth > maxSkipDepth {
		return false
	}
	switch r.peek() {
	case '{':
		r.i++
		if r.consume('}') {
			return true
		}
		for {
			if _, _, _, ok := r.stringSpan(); !ok || !r.consume(':') || !r.skip(depth+1) {
				return false
			}
			if r.consume(',') {
				continue
			}
			return r.consume('}')
		}
	case '[':
		r.i++
		if r.consume(']') {
			return true
		}
		for {
			if !r.skip(depth + 1) {
				return false
			}
			if r.consume(',') {
				continue
			}
			return r.consume(']')
		}
	case '"':
		_, _, _, ok := r.stringSpan()
		return ok
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	}
	return r.number()
}

// number reads a JSON number.
func (r *reader) number() bool {
	d := r.data
	if r.i < len(d) && d[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(d) && d[r.i] == '0':
		r.i++
	case r.i < len(d) && '1' <= d[r.i] && d[r.i] <= '9':
		r.digits()
	default:
		return false
	}
	if r.i < len(d) && d[r.i] == '.' {
		r.i++
		if !r.digits() {
			return false
		}
	}
	if r.i < len(d) && (d[r.i] == 'e' || d[r.i] == 'E') {
		r.i++
		if r.i < len(d) && (d[r.i] == '+' || d[r.i] == '-') {
			r.i++
		}
		if !r.digits() {
			return false
		}
	}
	return true
}

// digits reads one digit or more.
func (r *reader) digits() bool {
	start := r.i
	for r.i < len(r.data) && '0' <= r.data[r.i] && r.data[r.i] <= '9' {
		r.i++
	}
	return r.i > start
}

// stringMap reads a map of strings: {} is an empty map and null none, as
// encoding/json makes them; a null value is the empty string.
func (r *reader) stringMap() (map[string]string, bool) {
	return readMap(r, r.str)
}

// bytesMap reads a map of base64 values, decoded as encoding/json decodes
// them; a null value is nil.
func (r *reader) bytesMap() (map[string][]byte, bool) {
	return readMap(r, func() ([]byte, bool) {
		if r.literal("null") {
			return nil, true
		}
		start, end, plain, ok := r.stringSpan()
		if !ok {
			return nil, false
		}
		s := r.data[start:end]
		if !plain {
			v, ok := r.unquote(start, end)
			if !ok {
				return nil, false
			}
			s = []byte(v)
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(b, s)
		return b[:n], err == nil
	})
}

func readMap[V any](r *reader, value func() (V, bool)) (map[string]V, bool) {
	if r.literal("null") {
		return nil, true
	}
	if !r.consume('{') {
		return nil, false
	}
	m := map[string]V{}
	if r.consume('}') {
		return m, true
	}
	for {
		k, ok := r.stringValue()
		if !ok || !r.consume(':') {
			return nil, false
		}
		v, ok := value()
		if !ok {
			return nil, false
		}
		// encoding/json keeps the last of a key given twice; the strict
		// serializer of requests warns or refuses: left to it.
		if _, dup := m[k]; dup {
			return nil, false
		}
		m[k] = v
		if r.consume(',') {
			continue
		}
		return m, r.consume('}')
	}
}

// array reads an array: [] is an empty slice and null none, as encoding/json
// makes them.
func array[T any](r *reader, item func(*T) bool) ([]T, bool) {
	if r.literal("null") {
		return nil, true
	}
	if !r.consume('[') {
		return nil, false
	}
	s := []T{}
	if r.consume(']') {
		return s, true
	}
	for {
		var zero T
		s = append(s, zero)
		if !item(&s[len(s)-1]) {
			return nil, false
		}
		if r.consume(',') {
			continue
		}
		return s, r.consume(']')
	}
}

// pointer reads a value into a new T; null is nil.
func pointer[T any](r *reader, read func(*T) bool) (*T, bool) {
	if r.literal("null") {
		return nil, true
	}
	v := new(T)
	return v, read(v)
}
