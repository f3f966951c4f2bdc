package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// Labels and annotations the bench puts on its objects.
const (
	// bucketLabel takes 100 values, so that a selector on one matches 1%.
	bucketLabel = "bench.capstan.dev/bucket"
	// sentAnnotation carries the time an update was sent, in Unix
	// nanoseconds, for watch delivery latency.
	sentAnnotation = "bench.capstan.dev/sent"
	fieldManager   = "capstan-bench"
)

// entryShape says how many entries of what size an object carries: 12 plain
// and 4 secret entries of 64 bytes make about 1 KiB.
type entryShape struct {
	data, secret, valueLen int
}

var (
	smallShape = entryShape{data: 12, secret: 4, valueLen: 64}
	bigShape   = entryShape{data: 120, secret: 40, valueLen: 64}
)

func namespaceName(prefix string, i int) string { return fmt.Sprintf("%s-%d", prefix, i) }

func objectName(prefix string, i int) string { return fmt.Sprintf("%s-%06d", prefix, i) }

func value(seed string, n int) string {
	s := strings.Repeat(seed+"-", n/(len(seed)+1)+1)
	return s[:n]
}

// newConfigSet returns the object the bench creates: the same entries for
// every system, so that Capstan and the CRD store the same bytes.
func newConfigSet(apiVersion, ns, name string, i int, shape entryShape) *configv1beta1.ConfigSet {
	cs := &configv1beta1.ConfigSet{
		TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "ConfigSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: ns,
			Labels:    map[string]string{bucketLabel: strconv.Itoa(i % 100), "app.kubernetes.io/part-of": "capstan-bench"},
		},
		Spec: configv1beta1.ConfigSetSpec{
			Data:       map[string]string{},
			SecretData: map[string][]byte{},
		},
	}
	for k := range shape.data {
		cs.Spec.Data[fmt.Sprintf("setting.%03d", k)] = value(name, shape.valueLen)
	}
	for k := range shape.secret {
		cs.Spec.SecretData[fmt.Sprintf("secret.%03d", k)] = []byte(value(name, shape.valueLen*3/4))
	}
	return cs
}

// storedValue is the JSON an identity-encrypted apiserver writes to etcd for
// a freshly created object: the object with uid, timestamps, generation,
// status and the managedFields entry of its creator. Raw etcd puts these bytes.
func storedValue(ns, name string, i int, shape entryShape) ([]byte, error) {
	cs := newConfigSet(configv1beta1.SchemeGroupVersion.String(), ns, name, i, shape)
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	cs.UID = types.UID(fmt.Sprintf("5f3c9a10-0000-4000-8000-%012d", i))
	cs.Generation = 1
	cs.CreationTimestamp = now
	limit := int32(10)
	cs.Spec.RevisionHistoryLimit = &limit
	cs.Status.CurrentRevision = 1
	cs.Status.ObservedGeneration = 1
	fields := map[string]any{}
	data := map[string]any{}
	for k := range cs.Spec.Data {
		data["f:"+k] = map[string]any{}
	}
	secret := map[string]any{}
	for k := range cs.Spec.SecretData {
		secret["f:"+k] = map[string]any{}
	}
	labels := map[string]any{}
	for k := range cs.Labels {
		labels["f:"+k] = map[string]any{}
	}
	fields["f:metadata"] = map[string]any{"f:labels": labels}
	fields["f:spec"] = map[string]any{"f:data": data, "f:secretData": secret}
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	cs.ManagedFields = []metav1.ManagedFieldsEntry{{
		Manager:    fieldManager,
		Operation:  metav1.ManagedFieldsOperationUpdate,
		APIVersion: cs.APIVersion,
		Time:       &now,
		FieldsType: "FieldsV1",
		FieldsV1:   &metav1.FieldsV1{Raw: raw},
	}}
	return json.Marshal(cs)
}
