package app

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clienttesting "k8s.io/client-go/testing"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/pkg/generated/clientset/versioned/fake"
)

// waitLimit bounds how long a test waits for the command to get somewhere;
// it is only reached when the test fails.
const waitLimit = 30 * time.Second

// Consumers of the ConfigSet "web".
var (
	webAt8    = v1beta1.ConfigSetConsumer{Kind: "Deployment", Name: "web", Revision: 8, RolledOut: true}
	dbAt7     = v1beta1.ConfigSetConsumer{Kind: "StatefulSet", Name: "db", Revision: 7, RolledOut: true}
	dbRolling = v1beta1.ConfigSetConsumer{Kind: "StatefulSet", Name: "db", Revision: 8}
	dbAt8     = v1beta1.ConfigSetConsumer{Kind: "StatefulSet", Name: "db", Revision: 8, RolledOut: true}
)

// rolloutConfigSet is the ConfigSet "web" at revision 8, projected and
// pointed at 8, with the given consumers.
func rolloutConfigSet(consumers ...v1beta1.ConfigSetConsumer) *v1beta1.ConfigSet {
	return &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNamespace},
		Spec: v1beta1.ConfigSetSpec{
			Data:       map[string]string{"A": "1"},
			Projection: &v1beta1.ConfigSetProjection{PerRevision: true},
		},
		Status: v1beta1.ConfigSetStatus{
			CurrentRevision: 8,
			Projection:      &v1beta1.ConfigSetProjectionStatus{Revision: 8, RolloutRevision: 8, Consumers: consumers},
		},
	}
}

// Blocks of output of rollout status for "web".
const (
	webSummary    = "configset/web: revision 8, projected 8, workloads pointed at 8\n"
	webHeader     = "KIND          NAME   REVISION   ROLLED-OUT\n"
	webAt8Line    = "Deployment    web    8          true\n"
	webIncomplete = webSummary + webHeader + webAt8Line + "StatefulSet   db     7          true\n"
	webRolling    = webSummary + webHeader + webAt8Line + "StatefulSet   db     8          false\n"
	webComplete   = webSummary + webHeader + webAt8Line + "StatefulSet   db     8          true\n"
	webDone       = "configset/web: rollout of revision 8 complete\n"
)

// refuseWatch makes the test fail if the command watches.
func refuseWatch(t *testing.T, client *fake.Clientset) {
	client.PrependWatchReactor("*", func(clienttesting.Action) (bool, watch.Interface, error) {
		t.Errorf("the command watched")
		return false, nil, nil
	})
}

func TestRolloutStatusOnce(t *testing.T) {
	// The consumers are out of order, to be sorted by kind, then name.
	client := fake.NewClientset(rolloutConfigSet(dbAt7, webAt8))
	refuseWatch(t, client)
	stdout, stderr, err := runPlugin(t, client, "rollout", "status", "web", "--watch=false")
	if err != nil {
		t.Fatalf("rollout status: %v\nstderr: %s", err, stderr)
	}
	if stdout != webIncomplete || stderr != "" {
		t.Errorf("rollout status printed\n%s\nwant\n%s\nstderr: %q", stdout, webIncomplete, stderr)
	}

	// A complete rollout returns at once, watching or not.
	client = fake.NewClientset(rolloutConfigSet(dbAt8, webAt8))
	refuseWatch(t, client)
	stdout, _, err = runPlugin(t, client, "rollout", "status", "web")
	if err != nil || stdout != webComplete+webDone {
		t.Errorf("rollout status of a complete rollout: error %v, output\n%s\nwant\n%s", err, stdout, webComplete+webDone)
	}

	_, _, err = runPlugin(t, client, "rollout", "status", "nope", "--watch=false")
	if err == nil || err.Error() != `configset "nope" not found in namespace "shop"` {
		t.Errorf("rollout status of a missing configset: error %v", err)
	}
	_, _, err = runPlugin(t, client, "rollout", "status", "web", "--timeout=-1s")
	if err == nil || err.Error() != "invalid --timeout -1s: use a duration of at least 0, where 0 waits without a limit" {
		t.Errorf("rollout status with a negative timeout: error %v", err)
	}
	if _, _, err = runPlugin(t, client, "rollout", "status"); err == nil {
		t.Errorf("rollout status without a name succeeded")
	}
}

func TestRolloutStatusNotProjected(t *testing.T) {
	plain := &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: testNamespace},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"A": "1"}},
		Status:     v1beta1.ConfigSetStatus{CurrentRevision: 2},
	}
	client := fake.NewClientset(plain)
	refuseWatch(t, client)
	for _, args := range [][]string{
		{"rollout", "status", "plain", "--watch=false"},
		{"rollout", "status", "plain", "-w"},
	} {
		stdout, stderr, err := runPlugin(t, client, args...)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		want := "configset/plain: revision 2, not projected\n"
		if args[3] == "-w" {
			want += "configset/plain: rollout of revision 2 complete\n"
		}
		if stdout != want {
			t.Errorf("%q printed %q, want %q", args, stdout, want)
		}
		if want := "No consumers of configset/plain found in namespace \"shop\".\n"; stderr != want {
			t.Errorf("%q wrote %q to stderr, want %q", args, stderr, want)
		}
	}
}

// signalWatches makes the fake clientset's watches of ConfigSets send on the
// returned channel once they are registered, so that an update made after
// that is seen as an event.
func signalWatches(client *fake.Clientset) <-chan struct{} {
	watching := make(chan struct{}, 10)
	client.PrependWatchReactor("configsets", func(action clienttesting.Action) (bool, watch.Interface, error) {
		w, err := client.Tracker().Watch(action.GetResource(), action.GetNamespace(), action.(clienttesting.WatchActionImpl).ListOptions)
		watching <- struct{}{}
		return true, w, err
	})
	return watching
}

type pluginResult struct {
	stdout, stderr string
	err            error
}

// startPlugin runs the plugin in the background.
func startPlugin(t *testing.T, client versioned.Interface, args ...string) <-chan pluginResult {
	done := make(chan pluginResult, 1)
	go func() {
		stdout, stderr, err := runPlugin(t, client, args...)
		done <- pluginResult{stdout, stderr, err}
	}()
	return done
}

// awaitWatch waits until the command watches, failing if it ends first.
func awaitWatch(t *testing.T, watching <-chan struct{}, done <-chan pluginResult) {
	t.Helper()
	select {
	case <-watching:
	case r := <-done:
		t.Fatalf("the command ended before it watched: error %v, output\n%s", r.err, r.stdout)
	case <-time.After(waitLimit):
		t.Fatalf("the command did not watch in %s", waitLimit)
	}
}

// awaitEnd waits for the command to end.
func awaitEnd(t *testing.T, done <-chan pluginResult) pluginResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(waitLimit):
		t.Fatalf("the command did not end in %s", waitLimit)
		return pluginResult{}
	}
}

// updateConsumers sets the consumers of "web", and its observedGeneration,
// through the clientset.
func updateConsumers(t *testing.T, client versioned.Interface, observedGeneration int64, consumers ...v1beta1.ConfigSetConsumer) {
	t.Helper()
	ctx := context.Background()
	cs, err := client.ConfigV1beta1().ConfigSets(testNamespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs.Status.ObservedGeneration = observedGeneration
	cs.Status.Projection.Consumers = consumers
	if _, err := client.ConfigV1beta1().ConfigSets(testNamespace).UpdateStatus(ctx, cs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestRolloutStatusWatch(t *testing.T) {
	// Another ConfigSet, complete, must not end the wait: the fake
	// clientset's watch ignores the field selector.
	other := rolloutConfigSet(webAt8)
	other.Name = "other"
	client := fake.NewClientset(rolloutConfigSet(dbAt7, webAt8), other)
	watching := signalWatches(client)
	done := startPlugin(t, client, "rollout", "status", "web")
	awaitWatch(t, watching, done)

	// A change that shows nothing new prints nothing.
	updateConsumers(t, client, 2, dbAt7, webAt8)
	updateConsumers(t, client, 3, webAt8, dbRolling)
	select {
	case r := <-done:
		t.Fatalf("the command ended before the rollout was complete: error %v, output\n%s", r.err, r.stdout)
	default:
	}
	updateConsumers(t, client, 4, webAt8, dbAt8)

	r := awaitEnd(t, done)
	if r.err != nil {
		t.Fatalf("rollout status: %v\nstderr: %s", r.err, r.stderr)
	}
	if want := webIncomplete + webRolling + webComplete + webDone; r.stdout != want {
		t.Errorf("rollout status printed\n%s\nwant\n%s", r.stdout, want)
	}
	if r.stderr != "" {
		t.Errorf("rollout status wrote to stderr: %q", r.stderr)
	}
}

func TestRolloutStatusDeleted(t *testing.T) {
	client := fake.NewClientset(rolloutConfigSet(dbAt7, webAt8))
	watching := signalWatches(client)
	done := startPlugin(t, client, "rollout", "status", "web")
	awaitWatch(t, watching, done)
	if err := client.ConfigV1beta1().ConfigSets(testNamespace).Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r := awaitEnd(t, done)
	if r.err == nil || r.err.Error() != "configset/web was deleted while waiting for its rollout" {
		t.Errorf("error %v, want the ConfigSet to be deleted", r.err)
	}
}

func TestRolloutStatusTimeout(t *testing.T) {
	client := fake.NewClientset(rolloutConfigSet(dbAt7, webAt8))
	stdout, _, err := runPlugin(t, client, "rollout", "status", "web", "--timeout", "50ms")
	if want := "timed out after 50ms (--timeout) waiting for the rollout of configset/web"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if stdout != webIncomplete {
		t.Errorf("rollout status printed\n%s\nwant\n%s", stdout, webIncomplete)
	}
}

// runRolloutStatus runs rollout status --watch with a short interval between
// gets.
func runRolloutStatus(client versioned.Interface) (string, error) {
	var out, errOut bytes.Buffer
	o := &rolloutStatusOptions{
		env: &env{
			streams: genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
			client:  func() (versioned.Interface, string, error) { return client, testNamespace, nil },
		},
		watch:    true,
		interval: time.Millisecond,
	}
	err := o.run(context.Background(), "web")
	return out.String(), err
}

// completeOnGet makes the nth get of the ConfigSet, and those after it,
// return it with its rollout complete. It returns the number of gets so far.
func completeOnGet(client *fake.Clientset, n int) *int {
	gets := 0
	client.PrependReactor("get", "configsets", func(clienttesting.Action) (bool, runtime.Object, error) {
		gets++
		if gets >= n {
			return true, rolloutConfigSet(webAt8, dbAt8), nil
		}
		return false, nil, nil
	})
	return &gets
}

func TestRolloutStatusWithoutWatch(t *testing.T) {
	// A server that cannot watch is asked again and again.
	client := fake.NewClientset(rolloutConfigSet(dbAt7, webAt8))
	watches := 0
	client.PrependWatchReactor("configsets", func(clienttesting.Action) (bool, watch.Interface, error) {
		watches++
		return true, nil, apierrors.NewMethodNotSupported(v1beta1.Resource("configsets"), "watch")
	})
	gets := completeOnGet(client, 4)
	stdout, err := runRolloutStatus(client)
	if err != nil {
		t.Fatal(err)
	}
	if *gets != 4 || watches != 1 {
		t.Errorf("%d gets and %d watches, want 4 gets and 1 watch", *gets, watches)
	}
	if want := webIncomplete + webComplete + webDone; stdout != want {
		t.Errorf("rollout status printed\n%s\nwant\n%s", stdout, want)
	}
}

func TestRolloutStatusWatchErrors(t *testing.T) {
	// watchWithError returns a watch that reports err and ends.
	watchWithError := func(err *apierrors.StatusError) clienttesting.WatchReactionFunc {
		return func(clienttesting.Action) (bool, watch.Interface, error) {
			w := watch.NewRaceFreeFake()
			w.Error(&err.ErrStatus)
			return true, w, nil
		}
	}

	// An expired resource version: get the ConfigSet again.
	client := fake.NewClientset(rolloutConfigSet(dbAt7, webAt8))
	client.PrependWatchReactor("configsets", watchWithError(apierrors.NewResourceExpired("too old resource version: 5 (9)")))
	gets := completeOnGet(client, 2)
	stdout, err := runRolloutStatus(client)
	if err != nil || *gets != 2 || stdout != webIncomplete+webComplete+webDone {
		t.Errorf("after an expired watch: error %v, %d gets, output\n%s", err, *gets, stdout)
	}

	// Another error ends the command.
	client = fake.NewClientset(rolloutConfigSet(dbAt7, webAt8))
	client.PrependWatchReactor("configsets", watchWithError(apierrors.NewForbidden(v1beta1.Resource("configsets"), "web", nil)))
	_, err = runRolloutStatus(client)
	if want := `watching configset/web: configsets.config.capstan.dev "web" is forbidden: <nil>`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestRolloutComplete(t *testing.T) {
	notProjected := func(consumers ...v1beta1.ConfigSetConsumer) *v1beta1.ConfigSet {
		cs := rolloutConfigSet(consumers...)
		cs.Spec.Projection = nil
		return cs
	}
	behind := rolloutConfigSet(webAt8)
	behind.Status.Projection.Revision = 7
	unreported := rolloutConfigSet()
	unreported.Status.Projection = nil
	tests := []struct {
		name string
		cs   *v1beta1.ConfigSet
		want bool
	}{
		{"every consumer at the revision and rolled out", rolloutConfigSet(webAt8, dbAt8), true},
		{"a consumer at an older revision", rolloutConfigSet(webAt8, dbAt7), false},
		{"a consumer not rolled out", rolloutConfigSet(webAt8, dbRolling), false},
		{"no consumers", rolloutConfigSet(), true},
		{"the revision is not projected yet", behind, false},
		{"the projection is not reported yet", unreported, false},
		{"not projected, no status", func() *v1beta1.ConfigSet { cs := notProjected(); cs.Status.Projection = nil; return cs }(), true},
		{"not projected, a consumer behind", notProjected(dbAt7), false},
	}
	for _, tt := range tests {
		if got := rolloutComplete(tt.cs); got != tt.want {
			t.Errorf("%s: rolloutComplete = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRolloutSummaryAndTable(t *testing.T) {
	cs := rolloutConfigSet()
	cs.Status.Projection = nil
	if got, want := rolloutSummary(cs), "configset/web: revision 8, not projected yet, workloads not pointed at a revision yet"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	cs.Status.Projection = &v1beta1.ConfigSetProjectionStatus{Revision: 8, RolloutRevision: 6}
	if got, want := rolloutSummary(cs), "configset/web: revision 8, projected 8, workloads pointed at 6"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}

	table := consumersTable([]v1beta1.ConfigSetConsumer{
		{Kind: "StatefulSet", Name: "a", Revision: 8},
		{Kind: "Deployment", Name: "z", Revision: 8, RolledOut: true},
		{Kind: "Deployment", Name: "b"},
	})
	want := [][]any{
		{"Deployment", "b", none, false},
		{"Deployment", "z", "8", true},
		{"StatefulSet", "a", "8", false},
	}
	if len(table.Rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(table.Rows), len(want))
	}
	for i, row := range table.Rows {
		for j, cell := range row.Cells {
			if cell != want[i][j] {
				t.Errorf("row %d is %v, want %v", i, row.Cells, want[i])
				break
			}
		}
	}
}
