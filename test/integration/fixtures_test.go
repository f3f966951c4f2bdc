package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	registryrest "k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/rest"

	"capstan.dev/capstan/cmd/apiserver/app/local"
	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// testTimeout bounds every test function (its env's context). The machine is
// shared and the concurrent writers make hundreds of requests, so it is
// generous; a hang fails instead of blocking the run.
const testTimeout = 4 * time.Minute

// eventTimeout is how long a test waits for a watch event it expects.
const eventTimeout = 30 * time.Second

// manualLabel marks the ConfigRevisions a test writes through the store
// itself, so that selectors can tell them from any the server writes.
const manualLabel = "apitest.capstan.dev/manual"

// policyTimeout is how long a test waits for a ConfigPolicy change to reach
// the admission plugin's informer.
const policyTimeout = 10 * time.Second

// cascadeTimeout is how long a test polls for revisions that a ConfigSet
// deletion should remove, when they are not gone right away.
const cascadeTimeout = 5 * time.Second

// quietPeriod is how long a test waits before it checks that something did
// not happen in the background, or listens for an event it must not receive.
const quietPeriod = time.Second

// causeAnnotation is the annotation a revision copies into changeCause.
const causeAnnotation = config.ChangeCauseAnnotation

// adminUser is the user every request of these tests runs as: local mode
// admits the local admin and nobody else.
const adminUser = local.AdminUser

// env is one in-process server with an admin clientset that records the
// warnings of every response, and a context bounded by testTimeout.
type env struct {
	ts       *capstantesting.TestServer
	cs       versioned.Interface
	ctx      context.Context
	warnings *warningRecorder
}

// warningRecorder records the Warning headers of responses.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// take returns the warnings recorded since the last call and forgets them.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// sharedEnv returns the package's shared server with a fresh clientset.
func sharedEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t, sharedServer(t))
}

// startEnv starts a server of the test's own, with extra flags; use it only
// when the test needs what the shared server does not have, and say which.
func startEnv(t *testing.T, flags ...string) *env {
	t.Helper()
	return newEnv(t, capstantesting.StartTestServer(t, flags...))
}

// newEnv builds the admin clientset of ts, recording warnings.
func newEnv(t *testing.T, ts *capstantesting.TestServer) *env {
	t.Helper()
	cfg := rest.CopyConfig(ts.ClientConfig)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	cs, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("building clientset: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return &env{ts: ts, cs: cs, ctx: ctx, warnings: warnings}
}

// configSet returns a v1beta1 ConfigSet with the given entries.
func configSet(name string, data map[string]string, secretData map[string][]byte) *v1beta1.ConfigSet {
	return &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1beta1.ConfigSetSpec{Data: data, SecretData: secretData},
	}
}

// mustCreate creates a ConfigSet or fails the test.
func (e *env) mustCreate(t *testing.T, ns string, obj *v1beta1.ConfigSet) *v1beta1.ConfigSet {
	t.Helper()
	got, err := e.cs.ConfigV1beta1().ConfigSets(ns).Create(e.ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ConfigSet %s/%s: %v", ns, obj.Name, err)
	}
	return got
}

// mustGet reads a ConfigSet or fails the test.
func (e *env) mustGet(t *testing.T, ns, name string) *v1beta1.ConfigSet {
	t.Helper()
	got, err := e.cs.ConfigV1beta1().ConfigSets(ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get ConfigSet %s/%s: %v", ns, name, err)
	}
	return got
}

// mustUpdate applies change to the stored ConfigSet and updates it, failing
// the test on any error.
func (e *env) mustUpdate(t *testing.T, ns, name string, change func(*v1beta1.ConfigSet)) *v1beta1.ConfigSet {
	t.Helper()
	cur := e.mustGet(t, ns, name)
	change(cur)
	got, err := e.cs.ConfigV1beta1().ConfigSets(ns).Update(e.ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update ConfigSet %s/%s: %v", ns, name, err)
	}
	return got
}

// listRevisions lists the revisions of the ConfigSet name by the configSetName
// field selector, oldest first.
func (e *env) listRevisions(t *testing.T, ns, name string) []v1beta1.ConfigRevision {
	t.Helper()
	list, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "configSetName=" + name})
	if err != nil {
		t.Fatalf("list revisions of %s/%s: %v", ns, name, err)
	}
	items := list.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Revision < items[j].Revision })
	return items
}

// revisionNumbers returns the revision numbers of revs, in order.
func revisionNumbers(revs []v1beta1.ConfigRevision) []int64 {
	out := make([]int64, 0, len(revs))
	for _, r := range revs {
		out = append(out, r.Revision)
	}
	return out
}

// numberRange returns from, from+1, ..., to.
func numberRange(from, to int64) []int64 {
	var out []int64
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

// requireNumbers fails the test unless the revisions of name are exactly want.
func (e *env) requireNumbers(t *testing.T, ns, name string, want []int64) []v1beta1.ConfigRevision {
	t.Helper()
	revs := e.listRevisions(t, ns, name)
	if got := revisionNumbers(revs); !slices.Equal(got, want) {
		t.Fatalf("revisions of %s/%s = %v, want %v", ns, name, got, want)
	}
	return revs
}

// sameEntries reports whether two sets of entries are equal; an empty map
// and an absent one are the same entries, as the server counts them.
func sameEntries(data map[string]string, secretData map[string][]byte, wantData map[string]string, wantSecretData map[string][]byte) bool {
	return apiequality.Semantic.DeepEqual(data, wantData) && apiequality.Semantic.DeepEqual(secretData, wantSecretData)
}

// revisionWant is what one revision must record.
type revisionWant struct {
	revision   int64
	data       map[string]string
	secretData map[string][]byte
	cause      string
	rollbackOf int64
}

// requireRevision checks every field of rev against want and against the
// ConfigSet owner it belongs to.
func requireRevision(t *testing.T, rev *v1beta1.ConfigRevision, owner *v1beta1.ConfigSet, want revisionWant) {
	t.Helper()
	var problems []string
	if wantName := fmt.Sprintf("%s-%d", owner.Name, want.revision); rev.Name != wantName {
		problems = append(problems, fmt.Sprintf("name %q, want %q", rev.Name, wantName))
	}
	if rev.Namespace != owner.Namespace {
		problems = append(problems, fmt.Sprintf("namespace %q, want %q", rev.Namespace, owner.Namespace))
	}
	if rev.ConfigSetName != owner.Name || rev.Revision != want.revision {
		problems = append(problems, fmt.Sprintf("configSetName %q revision %d, want %q %d", rev.ConfigSetName, rev.Revision, owner.Name, want.revision))
	}
	if !sameEntries(rev.Data, rev.SecretData, want.data, want.secretData) {
		problems = append(problems, fmt.Sprintf("data %v secretData %q, want %v %q", rev.Data, rev.SecretData, want.data, want.secretData))
	}
	if rev.Author != adminUser {
		problems = append(problems, fmt.Sprintf("author %q, want %q", rev.Author, adminUser))
	}
	if rev.ChangeCause != want.cause {
		problems = append(problems, fmt.Sprintf("changeCause %q, want %q", rev.ChangeCause, want.cause))
	}
	if rev.RollbackOf != want.rollbackOf {
		problems = append(problems, fmt.Sprintf("rollbackOf %d, want %d", rev.RollbackOf, want.rollbackOf))
	}
	if got := rev.Labels[config.ConfigSetLabel]; got != owner.Name {
		problems = append(problems, fmt.Sprintf("label %s=%q, want %q", config.ConfigSetLabel, got, owner.Name))
	}
	if refs := rev.OwnerReferences; len(refs) != 1 || refs[0].Kind != "ConfigSet" || refs[0].APIVersion != "config.capstan.dev/v1beta1" ||
		refs[0].Name != owner.Name || refs[0].UID != owner.UID || refs[0].Controller == nil || !*refs[0].Controller {
		problems = append(problems, fmt.Sprintf("ownerReferences %+v, want one controller reference to ConfigSet %s (uid %s)", refs, owner.Name, owner.UID))
	}
	if len(problems) > 0 {
		t.Errorf("revision %s/%s: %v", rev.Namespace, rev.Name, problems)
	}
}

// requireNoChange fails the test unless the ConfigSet is still at revision
// wantRevision and its revisions are still wantNumbers.
func (e *env) requireNoChange(t *testing.T, ns, name string, wantRevision int64, wantNumbers []int64) {
	t.Helper()
	stored := e.mustGet(t, ns, name)
	if stored.Status.CurrentRevision != wantRevision {
		t.Errorf("stored currentRevision = %d, want %d", stored.Status.CurrentRevision, wantRevision)
	}
	if got := revisionNumbers(e.listRevisions(t, ns, name)); !slices.Equal(got, wantNumbers) {
		t.Errorf("revisions = %v, want %v (no new revision)", got, wantNumbers)
	}
}

// poll waits up to timeout for cond, failing the test with what when it never holds.
func (e *env) poll(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	var lastErr error
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		lastErr = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting %v for %s: %v (last error: %v)", timeout, what, err, lastErr)
	}
}

// mustCreateRevision writes a ConfigRevision through the server's own
// store, as the server does, since users cannot create them.
func (e *env) mustCreateRevision(t *testing.T, ns string, rev *config.ConfigRevision) *config.ConfigRevision {
	t.Helper()
	ctx := genericapirequest.WithNamespace(e.ctx, ns)
	rev.Namespace = ns
	obj, err := e.ts.Server.Storage.ConfigRevisions.Create(ctx, rev, registryrest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ConfigRevision %s/%s through the store: %v", ns, rev.Name, err)
	}
	return obj.(*config.ConfigRevision)
}

// manualRevision returns an internal ConfigRevision of configSetName owned by
// owner (when owner is not nil) and marked with manualLabel.
func manualRevision(name, configSetName string, revision int64, owner *v1beta1.ConfigSet, data map[string]string, secretData map[string][]byte) *config.ConfigRevision {
	rev := &config.ConfigRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				config.ConfigSetLabel: configSetName,
				manualLabel:           "true",
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

// nextEvent returns the next event of w, failing the test when none comes
// within eventTimeout or the watch ends.
func nextEvent(t *testing.T, w watch.Interface) watch.Event {
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
	case <-time.After(eventTimeout):
		t.Fatalf("no watch event within %v", eventTimeout)
	}
	return watch.Event{}
}

// noEvent fails the test when w delivers an event within quietPeriod.
func noEvent(t *testing.T, w watch.Interface) {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if ok {
			t.Fatalf("unexpected watch event %s: %s", ev.Type, describe(ev.Object))
		}
		t.Fatalf("watch closed unexpectedly")
	case <-time.After(quietPeriod):
	}
}

// describe renders an object for a failure message.
func describe(obj runtime.Object) string {
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Sprintf("%#v", obj)
	}
	return string(b)
}

// namesOf returns the names of objects, in order.
func namesOf[T metav1.Object](objs []T) []string {
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		names = append(names, o.GetName())
	}
	return names
}

// itemPtrs returns pointers to the elements of a list's items, so that
// namesOf can read their metadata.
func itemPtrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// onFreshPolicy reads the ConfigPolicy name and calls fn with it, again on
// a 409 Conflict. The server's own status controller writes every new policy's
// status, so a client that holds a policy it just created may hold a stale one.
func (e *env) onFreshPolicy(t *testing.T, name string, fn func(*v1beta1.ConfigPolicy) error) {
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

// describeInt32 renders an optional int32 for a failure message.
func describeInt32(p *int32) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

// describeBool renders an optional bool for a failure message.
func describeBool(p *bool) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}
