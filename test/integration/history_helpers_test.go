package integration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"capstan.dev/capstan/cmd/apiserver/app/local"
	apptesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// hiTimeout bounds every history, rollback and policy test function. The
// machine is shared and the concurrent writers make hundreds of requests, so
// it is generous; a hang fails instead of blocking the run.
const hiTimeout = 4 * time.Minute

// hiPolicyTimeout is how long a test waits for a ConfigPolicy change to reach
// the admission plugin's informer.
const hiPolicyTimeout = 10 * time.Second

// hiCascadeTimeout is how long a test polls for revisions that a ConfigSet
// deletion should remove, when they are not gone right away.
const hiCascadeTimeout = 5 * time.Second

// hiQuietPeriod is how long a test waits before it checks that something did
// not happen in the background.
const hiQuietPeriod = time.Second

// hiCauseAnnotation is the annotation a revision copies into changeCause.
const hiCauseAnnotation = config.ChangeCauseAnnotation

// hiAuthor is the user every request of these tests runs as: local mode
// admits the local admin and nobody else.
const hiAuthor = local.AdminUser

// hiEnv is one in-process server with an admin clientset that records the
// warnings of every response.
type hiEnv struct {
	ts       *apptesting.TestServer
	cs       versioned.Interface
	ctx      context.Context
	warnings *hiWarnings
}

// hiWarnings records the Warning headers of responses.
type hiWarnings struct {
	mu   sync.Mutex
	msgs []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *hiWarnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// take returns the warnings recorded since the last call and forgets them.
func (w *hiWarnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// hiStart starts a server for one test function, with extra flags.
func hiStart(t *testing.T, flags ...string) *hiEnv {
	t.Helper()
	ts := apptesting.StartTestServer(t, flags...)
	cfg := rest.CopyConfig(ts.ClientConfig)
	warnings := &hiWarnings{}
	cfg.WarningHandler = warnings
	cs, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("building clientset: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hiTimeout)
	t.Cleanup(cancel)
	return &hiEnv{ts: ts, cs: cs, ctx: ctx, warnings: warnings}
}

// hiConfigSet returns a v1beta1 ConfigSet with the given entries.
func hiConfigSet(name string, data map[string]string, secretData map[string][]byte) *v1beta1.ConfigSet {
	return &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1beta1.ConfigSetSpec{Data: data, SecretData: secretData},
	}
}

// hiMustCreate creates a ConfigSet or fails the test.
func (e *hiEnv) hiMustCreate(t *testing.T, ns string, obj *v1beta1.ConfigSet) *v1beta1.ConfigSet {
	t.Helper()
	got, err := e.cs.ConfigV1beta1().ConfigSets(ns).Create(e.ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ConfigSet %s/%s: %v", ns, obj.Name, err)
	}
	return got
}

// hiMustGet reads a ConfigSet or fails the test.
func (e *hiEnv) hiMustGet(t *testing.T, ns, name string) *v1beta1.ConfigSet {
	t.Helper()
	got, err := e.cs.ConfigV1beta1().ConfigSets(ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get ConfigSet %s/%s: %v", ns, name, err)
	}
	return got
}

// hiMustUpdate applies change to the stored ConfigSet and updates it, failing
// the test on any error.
func (e *hiEnv) hiMustUpdate(t *testing.T, ns, name string, change func(*v1beta1.ConfigSet)) *v1beta1.ConfigSet {
	t.Helper()
	cur := e.hiMustGet(t, ns, name)
	change(cur)
	got, err := e.cs.ConfigV1beta1().ConfigSets(ns).Update(e.ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update ConfigSet %s/%s: %v", ns, name, err)
	}
	return got
}

// hiRevisions lists the revisions of the ConfigSet name by the configSetName
// field selector, oldest first.
func (e *hiEnv) hiRevisions(t *testing.T, ns, name string) []v1beta1.ConfigRevision {
	t.Helper()
	list, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "configSetName=" + name})
	if err != nil {
		t.Fatalf("list revisions of %s/%s: %v", ns, name, err)
	}
	items := list.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Revision < items[j].Revision })
	return items
}

// hiNumbers returns the revision numbers of revs, in order.
func hiNumbers(revs []v1beta1.ConfigRevision) []int64 {
	out := make([]int64, 0, len(revs))
	for _, r := range revs {
		out = append(out, r.Revision)
	}
	return out
}

// hiRange returns from, from+1, ..., to.
func hiRange(from, to int64) []int64 {
	var out []int64
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

// hiRequireNumbers fails the test unless the revisions of name are exactly want.
func (e *hiEnv) hiRequireNumbers(t *testing.T, ns, name string, want []int64) []v1beta1.ConfigRevision {
	t.Helper()
	revs := e.hiRevisions(t, ns, name)
	if got := hiNumbers(revs); !slices.Equal(got, want) {
		t.Fatalf("revisions of %s/%s = %v, want %v", ns, name, got, want)
	}
	return revs
}

// hiSameEntries reports whether two sets of entries are equal; an empty map
// and an absent one are the same entries, as the server counts them.
func hiSameEntries(data map[string]string, secretData map[string][]byte, wantData map[string]string, wantSecretData map[string][]byte) bool {
	return apiequality.Semantic.DeepEqual(data, wantData) && apiequality.Semantic.DeepEqual(secretData, wantSecretData)
}

// hiRevisionWant is what one revision must record.
type hiRevisionWant struct {
	revision   int64
	data       map[string]string
	secretData map[string][]byte
	cause      string
	rollbackOf int64
}

// hiRequireRevision checks every field of rev against want and against the
// ConfigSet owner it belongs to.
func hiRequireRevision(t *testing.T, rev *v1beta1.ConfigRevision, owner *v1beta1.ConfigSet, want hiRevisionWant) {
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
	if !hiSameEntries(rev.Data, rev.SecretData, want.data, want.secretData) {
		problems = append(problems, fmt.Sprintf("data %v secretData %q, want %v %q", rev.Data, rev.SecretData, want.data, want.secretData))
	}
	if rev.Author != hiAuthor {
		problems = append(problems, fmt.Sprintf("author %q, want %q", rev.Author, hiAuthor))
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

// hiRequireNoChange fails the test unless the ConfigSet is still at revision
// wantRevision and its revisions are still wantNumbers.
func (e *hiEnv) hiRequireNoChange(t *testing.T, ns, name string, wantRevision int64, wantNumbers []int64) {
	t.Helper()
	stored := e.hiMustGet(t, ns, name)
	if stored.Status.CurrentRevision != wantRevision {
		t.Errorf("stored currentRevision = %d, want %d", stored.Status.CurrentRevision, wantRevision)
	}
	if got := hiNumbers(e.hiRevisions(t, ns, name)); !slices.Equal(got, wantNumbers) {
		t.Errorf("revisions = %v, want %v (no new revision)", got, wantNumbers)
	}
}

// hiPoll waits up to timeout for cond, failing the test with what when it never holds.
func (e *hiEnv) hiPoll(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
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
