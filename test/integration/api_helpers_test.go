package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	apptesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// apiTimeout bounds every test function of the API tests; the machine is
// shared, so it is generous, and a hang fails instead of blocking the run.
const apiTimeout = 3 * time.Minute

// apiEventTimeout is how long a test waits for a watch event it expects.
const apiEventTimeout = 30 * time.Second

// apiQuietPeriod is how long a test listens for an event it must not receive.
const apiQuietPeriod = time.Second

// apiManualLabel marks the ConfigRevisions a test writes through the store
// itself, so that selectors can tell them from any the server writes.
const apiManualLabel = "apitest.capstan.dev/manual"

// apiEnv is one in-process server with an admin clientset.
type apiEnv struct {
	ts  *apptesting.TestServer
	cs  versioned.Interface
	ctx context.Context
}

// apiStart starts a server for one test function and returns it with a
// context bounded by apiTimeout.
func apiStart(t *testing.T) *apiEnv {
	t.Helper()
	ts := apptesting.StartTestServer(t)
	cs, err := versioned.NewForConfig(ts.ClientConfig)
	if err != nil {
		t.Fatalf("building clientset: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	t.Cleanup(cancel)
	return &apiEnv{ts: ts, cs: cs, ctx: ctx}
}

// apiConfigSet returns a v1beta1 ConfigSet with the given plain entries.
func apiConfigSet(name string, data map[string]string) *v1beta1.ConfigSet {
	return &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1beta1.ConfigSetSpec{Data: data},
	}
}

// apiMustCreateConfigSet creates a v1beta1 ConfigSet or fails the test.
func (e *apiEnv) apiMustCreateConfigSet(t *testing.T, ns string, obj *v1beta1.ConfigSet) *v1beta1.ConfigSet {
	t.Helper()
	got, err := e.cs.ConfigV1beta1().ConfigSets(ns).Create(e.ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ConfigSet %s/%s: %v", ns, obj.Name, err)
	}
	return got
}

// apiMustCreateRevision writes a ConfigRevision through the server's own
// store, as the server does, since users cannot create them.
func (e *apiEnv) apiMustCreateRevision(t *testing.T, ns string, rev *config.ConfigRevision) *config.ConfigRevision {
	t.Helper()
	ctx := genericapirequest.WithNamespace(e.ctx, ns)
	rev.Namespace = ns
	obj, err := e.ts.Server.Storage.ConfigRevisions.Create(ctx, rev, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ConfigRevision %s/%s through the store: %v", ns, rev.Name, err)
	}
	return obj.(*config.ConfigRevision)
}

// apiRevision returns an internal ConfigRevision of configSetName owned by
// owner (when owner is not nil) and marked with apiManualLabel.
func apiRevision(name, configSetName string, revision int64, owner *v1beta1.ConfigSet, data map[string]string, secretData map[string][]byte) *config.ConfigRevision {
	rev := &config.ConfigRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				config.ConfigSetLabel: configSetName,
				apiManualLabel:        "true",
			},
		},
		ConfigSetName: configSetName,
		Revision:      revision,
		Data:          data,
		SecretData:    secretData,
		Author:        "apitest",
		ChangeCause:   fmt.Sprintf("revision %d", revision),
	}
	if owner != nil {
		controller := true
		rev.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: v1beta1.SchemeGroupVersion.String(),
			Kind:       "ConfigSet",
			Name:       owner.Name,
			UID:        owner.UID,
			Controller: &controller,
		}}
	}
	return rev
}

// apiNextEvent returns the next event of w, failing the test when none comes
// within apiEventTimeout or the watch ends.
func apiNextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatalf("watch closed while waiting for an event")
		}
		if ev.Type == watch.Error {
			t.Fatalf("watch error event: %#v", ev.Object)
		}
		return ev
	case <-time.After(apiEventTimeout):
		t.Fatalf("no watch event within %v", apiEventTimeout)
	}
	return watch.Event{}
}

// apiNoEvent fails the test when w delivers an event within apiQuietPeriod.
func apiNoEvent(t *testing.T, w watch.Interface) {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if ok {
			t.Fatalf("unexpected watch event %s: %s", ev.Type, apiDescribe(ev.Object))
		}
		t.Fatalf("watch closed unexpectedly")
	case <-time.After(apiQuietPeriod):
	}
}

// apiDescribe renders an object for a failure message.
func apiDescribe(obj runtime.Object) string {
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Sprintf("%#v", obj)
	}
	return string(b)
}

// apiNames returns the names of objects, in order.
func apiNames[T metav1.Object](objs []T) []string {
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		names = append(names, o.GetName())
	}
	return names
}

// apiPtrs returns pointers to the elements of a list's items, so that
// apiNames can read their metadata.
func apiPtrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// apiOnFreshPolicy reads the ConfigPolicy name and calls fn with it, again on
// a 409 Conflict. The server's own status controller writes every new policy's
// status, so a client that holds a policy it just created may hold a stale one.
func (e *apiEnv) apiOnFreshPolicy(t *testing.T, name string, fn func(*v1beta1.ConfigPolicy) error) {
	t.Helper()
	var err error
	for range 10 {
		var p *v1beta1.ConfigPolicy
		if p, err = e.cs.ConfigV1beta1().ConfigPolicies().Get(e.ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("get policy %s: %v", name, err)
		}
		if err = fn(p); !apierrors.IsConflict(err) {
			break
		}
	}
	if err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
}

// apiDescribeInt32 renders an optional int32 for a failure message.
func apiDescribeInt32(p *int32) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

// apiDescribeBool renders an optional bool for a failure message.
func apiDescribeBool(p *bool) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}
