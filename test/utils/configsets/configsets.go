// Package configsets builds the ConfigSets unit tests and benchmarks encode:
// the shape of the bench's objects (test/bench), with the metadata a stored
// object carries.
package configsets

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// BenchList is a list of n stored ConfigSets of the bench's shape: 12
// entries and 4 secret ones of 64 bytes (about 1 KiB of values), two labels,
// a managedFields entry, one uid and resourceVersion for all.
func BenchList(n int) *v1beta1.ConfigSetList {
	l := &v1beta1.ConfigSetList{TypeMeta: metav1.TypeMeta{APIVersion: "config.capstan.dev/v1beta1", Kind: "ConfigSetList"}}
	l.ResourceVersion = "123456"
	now := metav1.NewTime(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	raw := `{"f:metadata":{"f:labels":{".":{},"f:app":{},"f:bucket":{}}},"f:spec":{".":{},"f:data":{".":{}` +
		strings.Repeat(`,"f:setting.000":{}`, 12) + `},"f:secretData":{".":{}` + strings.Repeat(`,"f:secret.000":{}`, 4) + `}}}`
	for i := range n {
		name := fmt.Sprintf("bench-%06d", i)
		val := strings.Repeat(name+"-", 6)[:64]
		cs := v1beta1.ConfigSet{
			TypeMeta: metav1.TypeMeta{APIVersion: "config.capstan.dev/v1beta1", Kind: "ConfigSet"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench-1", UID: "5f3c9a10-0000-4000-8000-000000000001",
				ResourceVersion: "123456", Generation: 1, CreationTimestamp: now,
				Labels: map[string]string{"bucket": "7", "app": "bench"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "bench", Operation: metav1.ManagedFieldsOperationUpdate,
					APIVersion: "config.capstan.dev/v1beta1", Time: &now, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(raw)}}},
			},
			Spec:   v1beta1.ConfigSetSpec{Data: map[string]string{}, SecretData: map[string][]byte{}},
			Status: v1beta1.ConfigSetStatus{CurrentRevision: 1, ObservedGeneration: 1},
		}
		for k := range 12 {
			cs.Spec.Data[fmt.Sprintf("setting.%03d", k)] = val
		}
		for k := range 4 {
			cs.Spec.SecretData[fmt.Sprintf("secret.%03d", k)] = []byte(val[:48])
		}
		l.Items = append(l.Items, cs)
	}
	return l
}
