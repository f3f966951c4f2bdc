package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// rollbackEntries are the entries of revision n of the ConfigSets that
// rollbackHistory makes.
func rollbackEntries(n int64) (map[string]string, map[string][]byte) {
	return map[string]string{"v": fmt.Sprint(n), "common": "same"}, map[string][]byte{"token": []byte(fmt.Sprintf("secret-%d", n))}
}

// rollbackHistory creates name with revisions 1..n, revision i holding
// rollbackEntries(i), and returns it as stored.
func (e *env) rollbackHistory(t *testing.T, ns, name string, limit int32, n int64) *v1beta1.ConfigSet {
	t.Helper()
	data, secretData := rollbackEntries(1)
	cs := configSet(name, data, secretData)
	cs.Spec.RevisionHistoryLimit = ptr.To(limit)
	e.mustCreate(t, ns, cs)
	for i := int64(2); i <= n; i++ {
		e.mustUpdate(t, ns, name, func(cs *v1beta1.ConfigSet) {
			cs.Spec.Data, cs.Spec.SecretData = rollbackEntries(i)
		})
	}
	got := e.mustGet(t, ns, name)
	if got.Status.CurrentRevision != n {
		t.Fatalf("%s: currentRevision %d after %d changes", name, got.Status.CurrentRevision, n)
	}
	return got
}

// requireUnchanged fails the test unless the ConfigSet is exactly as want
// (same resourceVersion) and its revisions are wantNumbers.
func (e *env) requireUnchanged(t *testing.T, want *v1beta1.ConfigSet, wantNumbers []int64) {
	t.Helper()
	got := e.mustGet(t, want.Namespace, want.Name)
	if got.ResourceVersion != want.ResourceVersion || got.Status.CurrentRevision != want.Status.CurrentRevision ||
		!sameEntries(got.Spec.Data, got.Spec.SecretData, want.Spec.Data, want.Spec.SecretData) {
		t.Errorf("ConfigSet changed: resourceVersion %s revision %d data %v; want %s %d %v",
			got.ResourceVersion, got.Status.CurrentRevision, got.Spec.Data, want.ResourceVersion, want.Status.CurrentRevision, want.Spec.Data)
	}
	if numbers := revisionNumbers(e.listRevisions(t, want.Namespace, want.Name)); !slices.Equal(numbers, wantNumbers) {
		t.Errorf("revisions = %v, want %v", numbers, wantNumbers)
	}
}

// The TestRollback tests exercise the rollback subresource: what it restores
// and records, its errors, dry run, the old API version, and concurrent
// rollbacks. Each works in a namespace of its own on the shared server.

// TestRollbackRestoresARevisionAsANewRevision: restores a revision as a new revision.
func TestRollbackRestoresARevisionAsANewRevision(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-restores"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	before := e.rollbackHistory(t, ns, "app", 10, 3)
	got, err := client.Rollback(e.ctx, "app", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rollback to 1: %v", err)
	}
	wantData, wantSecretData := rollbackEntries(1)
	if got.Name != "app" || got.Namespace != ns || got.UID != before.UID {
		t.Errorf("response is %s/%s uid %s, want the ConfigSet %s/app uid %s", got.Namespace, got.Name, got.UID, ns, before.UID)
	}
	if got.Status.CurrentRevision != 4 || got.Generation != before.Generation+1 || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("response: currentRevision %d generation %d observedGeneration %d; want 4, %d, %d",
			got.Status.CurrentRevision, got.Generation, got.Status.ObservedGeneration, before.Generation+1, before.Generation+1)
	}
	if !sameEntries(got.Spec.Data, got.Spec.SecretData, wantData, wantSecretData) {
		t.Errorf("response entries %v %q, want %v %q", got.Spec.Data, got.Spec.SecretData, wantData, wantSecretData)
	}
	stored := e.mustGet(t, ns, "app")
	if stored.ResourceVersion != got.ResourceVersion || stored.Status.CurrentRevision != 4 ||
		!sameEntries(stored.Spec.Data, stored.Spec.SecretData, wantData, wantSecretData) {
		t.Errorf("stored: resourceVersion %s revision %d entries %v %q; want the response's %s, 4, %v %q",
			stored.ResourceVersion, stored.Status.CurrentRevision, stored.Spec.Data, stored.Spec.SecretData, got.ResourceVersion, wantData, wantSecretData)
	}
	revs := e.requireNumbers(t, ns, "app", []int64{1, 2, 3, 4})
	requireRevision(t, &revs[3], before, revisionWant{revision: 4, data: wantData, secretData: wantSecretData, rollbackOf: 1})
	// The restored revision itself is untouched.
	requireRevision(t, &revs[0], before, revisionWant{revision: 1, data: wantData, secretData: wantSecretData})

	// The raw response is a ConfigSet of the request's version.
	raw, err := e.cs.ConfigV1beta1().RESTClient().Post().Namespace(ns).Resource("configsets").Name("app").SubResource("rollback").
		Body([]byte(`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSetRollback","revision":2}`)).
		SetHeader("Content-Type", "application/json").DoRaw(e.ctx)
	if err != nil {
		t.Fatalf("raw rollback to 2: %v", err)
	}
	var typed struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Status     struct {
			CurrentRevision int64 `json:"currentRevision"`
		} `json:"status"`
		Spec struct {
			Data map[string]string `json:"data"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &typed); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	want2, _ := rollbackEntries(2)
	if typed.APIVersion != "config.capstan.dev/v1beta1" || typed.Kind != "ConfigSet" || typed.Status.CurrentRevision != 5 ||
		!sameEntries(typed.Spec.Data, nil, want2, nil) {
		t.Errorf("raw rollback response = %s; want a config.capstan.dev/v1beta1 ConfigSet at revision 5 with %v", raw, want2)
	}
	revs = e.requireNumbers(t, ns, "app", []int64{1, 2, 3, 4, 5})
	_, want2Secret := rollbackEntries(2)
	requireRevision(t, &revs[4], before, revisionWant{revision: 5, data: want2, secretData: want2Secret, rollbackOf: 2})

	// Rolling back to a rollback revision restores its entries too.
	got, err = client.Rollback(e.ctx, "app", &v1beta1.ConfigSetRollback{Revision: 4}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rollback to 4: %v", err)
	}
	if got.Status.CurrentRevision != 6 || !sameEntries(got.Spec.Data, got.Spec.SecretData, wantData, wantSecretData) {
		t.Errorf("rollback to 4: revision %d entries %v, want 6 and revision 1's %v", got.Status.CurrentRevision, got.Spec.Data, wantData)
	}
	revs = e.requireNumbers(t, ns, "app", numberRange(1, 6))
	requireRevision(t, &revs[5], before, revisionWant{revision: 6, data: wantData, secretData: wantSecretData, rollbackOf: 4})
}

// TestRollbackToTheEntriesItAlreadyHas: to the entries it already has.
//
// Today a rollback to entries the ConfigSet already holds changes
// nothing: no new revision, no write, and the response is the ConfigSet
// as stored. This pins that behaviour.
func TestRollbackToTheEntriesItAlreadyHas(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-same"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	before := e.rollbackHistory(t, ns, "same", 10, 2)
	got, err := client.Rollback(e.ctx, "same", &v1beta1.ConfigSetRollback{Revision: 2}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rollback to the current revision: %v", err)
	}
	if got.ResourceVersion != before.ResourceVersion || got.Status.CurrentRevision != 2 || got.Generation != before.Generation ||
		!sameEntries(got.Spec.Data, got.Spec.SecretData, before.Spec.Data, before.Spec.SecretData) {
		t.Errorf("response: resourceVersion %s revision %d generation %d data %v; want the ConfigSet unchanged (%s, 2, %d, %v)",
			got.ResourceVersion, got.Status.CurrentRevision, got.Generation, got.Spec.Data, before.ResourceVersion, before.Generation, before.Spec.Data)
	}
	e.requireUnchanged(t, before, []int64{1, 2})

	// The same when an older revision has the current entries.
	e.mustUpdate(t, ns, "same", func(cs *v1beta1.ConfigSet) { cs.Spec.Data, cs.Spec.SecretData = rollbackEntries(1) })
	before = e.mustGet(t, ns, "same")
	if before.Status.CurrentRevision != 3 {
		t.Fatalf("currentRevision %d, want 3", before.Status.CurrentRevision)
	}
	got, err = client.Rollback(e.ctx, "same", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rollback to 1 (same entries as 3): %v", err)
	}
	if got.ResourceVersion != before.ResourceVersion || got.Status.CurrentRevision != 3 {
		t.Errorf("response: resourceVersion %s revision %d; want unchanged %s, 3", got.ResourceVersion, got.Status.CurrentRevision, before.ResourceVersion)
	}
	e.requireUnchanged(t, before, []int64{1, 2, 3})
}

// TestRollbackToARevisionNotKept: revision not kept is 404.
func TestRollbackToARevisionNotKept(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-not-kept"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	before := e.rollbackHistory(t, ns, "short", 2, 3)
	e.requireNumbers(t, ns, "short", []int64{2, 3})
	for _, rev := range []int64{1, 4, 99} {
		_, err := client.Rollback(e.ctx, "short", &v1beta1.ConfigSetRollback{Revision: rev}, metav1.CreateOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("rollback to %d: err = %v, want 404 NotFound", rev, err)
			continue
		}
		if want := fmt.Sprintf("revision %d of configset short", rev); !strings.Contains(err.Error(), want) {
			t.Errorf("rollback to %d: message %q does not say %q", rev, err.Error(), want)
		}
	}
	e.requireUnchanged(t, before, []int64{2, 3})
	// A revision that was kept is still restorable.
	if _, err := client.Rollback(e.ctx, "short", &v1beta1.ConfigSetRollback{Revision: 2}, metav1.CreateOptions{}); err != nil {
		t.Errorf("rollback to kept revision 2: %v", err)
	}
	e.requireNumbers(t, ns, "short", []int64{3, 4})
}

// TestRollbackOfAMissingConfigSet: missing ConfigSet is 404.
func TestRollbackOfAMissingConfigSet(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-missing"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	_, err := client.Rollback(e.ctx, "nothing-here", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("rollback of a missing ConfigSet: err = %v, want 404", err)
	}
	if _, err := client.Get(e.ctx, "nothing-here", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after the rollback of a missing ConfigSet: err = %v, want NotFound", err)
	}
}

// TestRollbackOfAnImmutableConfigSet: immutable ConfigSet is 409.
func TestRollbackOfAnImmutableConfigSet(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-immutable"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	e.rollbackHistory(t, ns, "frozen", 10, 2)
	before := e.mustUpdate(t, ns, "frozen", func(cs *v1beta1.ConfigSet) { cs.Spec.Immutable = ptr.To(true) })
	_, err := client.Rollback(e.ctx, "frozen", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("rollback of an immutable ConfigSet: err = %v, want 409 Conflict", err)
	}
	if !strings.Contains(err.Error(), "immutable") {
		t.Errorf("message %q does not say the ConfigSet is immutable", err.Error())
	}
	e.requireUnchanged(t, before, []int64{1, 2})
	// Also when the revision is not kept: immutability is the answer, or a
	// 404; never a change.
	if _, err := client.Rollback(e.ctx, "frozen", &v1beta1.ConfigSetRollback{Revision: 99}, metav1.CreateOptions{}); !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		t.Errorf("rollback of an immutable ConfigSet to a missing revision: err = %v, want 409 or 404", err)
	}
	e.requireUnchanged(t, before, []int64{1, 2})
}

// TestRollbackToARevisionBelowOne: revision below 1 is 422.
func TestRollbackToARevisionBelowOne(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-below-one"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	before := e.rollbackHistory(t, ns, "invalid", 10, 2)
	for _, rev := range []int64{0, -1, -42} {
		_, err := client.Rollback(e.ctx, "invalid", &v1beta1.ConfigSetRollback{Revision: rev}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Errorf("rollback to %d: err = %v, want 422 Invalid", rev, err)
			continue
		}
		status, ok := err.(apierrors.APIStatus)
		if !ok || status.Status().Details == nil || len(status.Status().Details.Causes) != 1 || status.Status().Details.Causes[0].Field != "revision" {
			t.Errorf("rollback to %d: %v does not name the field revision", rev, err)
		}
	}
	// A body without a revision is revision 0.
	_, err := e.cs.ConfigV1beta1().RESTClient().Post().Namespace(ns).Resource("configsets").Name("invalid").SubResource("rollback").
		Body([]byte(`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigSetRollback"}`)).
		SetHeader("Content-Type", "application/json").DoRaw(e.ctx)
	if !apierrors.IsInvalid(err) {
		t.Errorf("rollback without a revision: err = %v, want 422 Invalid", err)
	}
	e.requireUnchanged(t, before, []int64{1, 2})
}

// TestRollbackBodyNamingAnotherConfigSet: body naming another ConfigSet is 400.
func TestRollbackBodyNamingAnotherConfigSet(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-named"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	before := e.rollbackHistory(t, ns, "named", 10, 2)
	_, err := client.Rollback(e.ctx, "named", &v1beta1.ConfigSetRollback{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Revision: 1}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("rollback with metadata.name other: err = %v, want 400 BadRequest", err)
	}
	if !strings.Contains(err.Error(), `"other"`) || !strings.Contains(err.Error(), `"named"`) {
		t.Errorf("message %q does not name both ConfigSets", err.Error())
	}
	e.requireUnchanged(t, before, []int64{1, 2})

	_, err = client.Rollback(e.ctx, "named", &v1beta1.ConfigSetRollback{ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere"}, Revision: 1}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) {
		t.Errorf("rollback with metadata.namespace elsewhere: err = %v, want 400 BadRequest", err)
	}
	e.requireUnchanged(t, before, []int64{1, 2})

	// The matching name is accepted.
	got, err := client.Rollback(e.ctx, "named", &v1beta1.ConfigSetRollback{ObjectMeta: metav1.ObjectMeta{Name: "named", Namespace: ns}, Revision: 1}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rollback with the matching name: %v", err)
	}
	if got.Status.CurrentRevision != 3 {
		t.Errorf("rollback with the matching name: revision %d, want 3", got.Status.CurrentRevision)
	}
}

// TestRollbackDryRun: dry run changes nothing.
func TestRollbackDryRun(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-dry-run"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	before := e.rollbackHistory(t, ns, "dry", 10, 3)
	got, err := client.Rollback(e.ctx, "dry", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("dry-run rollback: %v", err)
	}
	wantData, wantSecretData := rollbackEntries(1)
	if got.Status.CurrentRevision != 4 || got.Generation != before.Generation+1 ||
		!sameEntries(got.Spec.Data, got.Spec.SecretData, wantData, wantSecretData) {
		t.Errorf("dry-run response: revision %d generation %d entries %v %q; want the would-be 4, %d, %v %q",
			got.Status.CurrentRevision, got.Generation, got.Spec.Data, got.Spec.SecretData, before.Generation+1, wantData, wantSecretData)
	}
	e.requireUnchanged(t, before, []int64{1, 2, 3})
	// Dry-run errors are the real ones.
	if _, err := client.Rollback(e.ctx, "dry", &v1beta1.ConfigSetRollback{Revision: 99}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run rollback to a missing revision: err = %v, want 404", err)
	}
}

// TestRollbackThroughV1alpha1: through v1alpha1.
func TestRollbackThroughV1alpha1(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-v1alpha1"

	before := e.rollbackHistory(t, ns, "alpha", 10, 3)
	got, err := e.cs.ConfigV1alpha1().ConfigSets(ns).Rollback(e.ctx, "alpha", &v1alpha1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("v1alpha1 rollback to 1: %v", err)
	}
	entries := slices.Clone(got.Spec.Entries)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
	want := []v1alpha1.ConfigEntry{
		{Key: "common", Value: "same"},
		{Key: "token", Value: base64.StdEncoding.EncodeToString([]byte("secret-1")), Secret: true},
		{Key: "v", Value: "1"},
	}
	if !slices.Equal(entries, want) || got.Status.CurrentRevision != 4 || got.UID != before.UID {
		t.Errorf("v1alpha1 response: entries %+v revision %d uid %s; want %+v, 4, %s", entries, got.Status.CurrentRevision, got.UID, want, before.UID)
	}
	wantData, wantSecretData := rollbackEntries(1)
	revs := e.requireNumbers(t, ns, "alpha", []int64{1, 2, 3, 4})
	requireRevision(t, &revs[3], before, revisionWant{revision: 4, data: wantData, secretData: wantSecretData, rollbackOf: 1})

	raw, err := e.cs.ConfigV1alpha1().RESTClient().Post().Namespace(ns).Resource("configsets").Name("alpha").SubResource("rollback").
		Body([]byte(`{"apiVersion":"config.capstan.dev/v1alpha1","kind":"ConfigSetRollback","revision":2}`)).
		SetHeader("Content-Type", "application/json").DoRaw(e.ctx)
	if err != nil {
		t.Fatalf("raw v1alpha1 rollback: %v", err)
	}
	var typed metav1.TypeMeta
	if err := json.Unmarshal(raw, &typed); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	if typed.APIVersion != "config.capstan.dev/v1alpha1" || typed.Kind != "ConfigSet" {
		t.Errorf("raw v1alpha1 rollback response is %s %s, want config.capstan.dev/v1alpha1 ConfigSet", typed.APIVersion, typed.Kind)
	}
	wantData, wantSecretData = rollbackEntries(2)
	revs = e.requireNumbers(t, ns, "alpha", []int64{1, 2, 3, 4, 5})
	requireRevision(t, &revs[4], before, revisionWant{revision: 5, data: wantData, secretData: wantSecretData, rollbackOf: 2})
}

// TestRollbackConcurrent: concurrent rollbacks.
//
// Two rollbacks to different revisions at once: both succeed, each makes
// one revision, and the ConfigSet ends with the entries of the one that
// was applied last, which the last revision records.
func TestRollbackConcurrent(t *testing.T) {
	e := sharedEnv(t)
	const ns = "rollback-concurrent"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	e.rollbackHistory(t, ns, "race", 20, 3)
	for round := range 5 {
		// Start each round from entries that neither target has.
		start := e.mustUpdate(t, ns, "race", func(cs *v1beta1.ConfigSet) {
			cs.Spec.Data = map[string]string{"round": fmt.Sprint(round)}
			cs.Spec.SecretData = nil
		})
		base := start.Status.CurrentRevision
		targets := []int64{1, 2}
		results := make([]*v1beta1.ConfigSet, len(targets))
		errs := make([]error, len(targets))
		var ready, wg sync.WaitGroup
		ready.Add(1)
		for i, target := range targets {
			wg.Go(func() {
				ready.Wait()
				results[i], errs[i] = client.Rollback(e.ctx, "race", &v1beta1.ConfigSetRollback{Revision: target}, metav1.CreateOptions{})
			})
		}
		ready.Done()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: rollback to %d: %v", round, targets[i], err)
			}
		}
		final := e.mustGet(t, ns, "race")
		if final.Status.CurrentRevision != base+2 {
			t.Fatalf("round %d: currentRevision %d after two rollbacks from %d, want %d", round, final.Status.CurrentRevision, base, base+2)
		}
		responseRevisions := []int64{results[0].Status.CurrentRevision, results[1].Status.CurrentRevision}
		slices.Sort(responseRevisions)
		if !slices.Equal(responseRevisions, []int64{base + 1, base + 2}) {
			t.Errorf("round %d: the responses report revisions %v, want %d and %d", round, responseRevisions, base+1, base+2)
		}
		last := slices.IndexFunc(results, func(cs *v1beta1.ConfigSet) bool { return cs.Status.CurrentRevision == base+2 })
		if last < 0 {
			continue
		}
		wantData, wantSecretData := rollbackEntries(targets[last])
		if !sameEntries(final.Spec.Data, final.Spec.SecretData, wantData, wantSecretData) {
			t.Errorf("round %d: final entries %v, want revision %d's %v (the rollback answered with revision %d)",
				round, final.Spec.Data, targets[last], wantData, base+2)
		}
		revs := e.listRevisions(t, ns, "race")
		byNumber := map[int64]v1beta1.ConfigRevision{}
		for _, r := range revs {
			byNumber[r.Revision] = r
		}
		for i, target := range targets {
			n := results[i].Status.CurrentRevision
			rev, ok := byNumber[n]
			if !ok {
				t.Errorf("round %d: revision %d of the rollback to %d is not kept", round, n, target)
				continue
			}
			wantData, wantSecretData := rollbackEntries(target)
			requireRevision(t, &rev, start, revisionWant{revision: n, data: wantData, secretData: wantSecretData, rollbackOf: target})
		}
	}
}
