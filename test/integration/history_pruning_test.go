package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// setValue sets key n to value and updates the ConfigSet, so that every call
// makes one revision.
func (e *env) setValue(t *testing.T, ns, name string, value int64) *v1beta1.ConfigSet {
	t.Helper()
	return e.mustUpdate(t, ns, name, func(cs *v1beta1.ConfigSet) {
		cs.Spec.Data = map[string]string{"n": fmt.Sprint(value)}
	})
}

// TestHistoryPruning checks that only revisionHistoryLimit revisions are
// kept, the newest, and that the limit can be lowered and raised.
func TestHistoryPruning(t *testing.T) {
	e := sharedEnv(t)
	const ns, name = "hi-pruning", "pruned"

	cs := configSet(name, map[string]string{"n": "1"}, nil)
	cs.Spec.RevisionHistoryLimit = ptr.To[int32](3)
	created := e.mustCreate(t, ns, cs)
	for n := int64(2); n <= 6; n++ {
		got := e.setValue(t, ns, name, n)
		if got.Status.CurrentRevision != n {
			t.Fatalf("change %d: currentRevision = %d", n, got.Status.CurrentRevision)
		}
		// Pruning runs in the request that made the revision.
		want := numberRange(max(1, n-2), n)
		e.requireNumbers(t, ns, name, want)
	}
	revs := e.requireNumbers(t, ns, name, []int64{4, 5, 6})
	for i := range revs {
		n := revs[i].Revision
		requireRevision(t, &revs[i], created, revisionWant{revision: n, data: map[string]string{"n": fmt.Sprint(n)}})
	}
	for _, n := range []int64{1, 2, 3} {
		if _, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).Get(e.ctx, fmt.Sprintf("%s-%d", name, n), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get pruned revision %d: err = %v, want NotFound", n, err)
		}
	}

	t.Run("lowering the limit", func(t *testing.T) {
		lowered := e.mustUpdate(t, ns, name, func(cs *v1beta1.ConfigSet) { cs.Spec.RevisionHistoryLimit = ptr.To[int32](1) })
		if lowered.Status.CurrentRevision != 6 {
			t.Errorf("limit change: currentRevision = %d, want 6 (no revision)", lowered.Status.CurrentRevision)
		}
		// Whether the limit change alone prunes is not specified (the change
		// makes no revision, so today it does not); the next change must.
		t.Logf("revisions right after lowering the limit to 1: %v", revisionNumbers(e.listRevisions(t, ns, name)))
		e.setValue(t, ns, name, 7)
		revs := e.requireNumbers(t, ns, name, []int64{7})
		requireRevision(t, &revs[0], created, revisionWant{revision: 7, data: map[string]string{"n": "7"}})
	})

	t.Run("raising the limit", func(t *testing.T) {
		e.mustUpdate(t, ns, name, func(cs *v1beta1.ConfigSet) { cs.Spec.RevisionHistoryLimit = ptr.To[int32](5) })
		e.requireNumbers(t, ns, name, []int64{7})
		for n := int64(8); n <= 11; n++ {
			e.setValue(t, ns, name, n)
			e.requireNumbers(t, ns, name, numberRange(7, n))
		}
		e.setValue(t, ns, name, 12)
		e.requireNumbers(t, ns, name, numberRange(8, 12))
	})

	t.Run("the current revision is kept at limit 1", func(t *testing.T) {
		e.mustUpdate(t, ns, name, func(cs *v1beta1.ConfigSet) { cs.Spec.RevisionHistoryLimit = ptr.To[int32](1) })
		for n := int64(13); n <= 15; n++ {
			e.setValue(t, ns, name, n)
			e.requireNumbers(t, ns, name, []int64{n})
		}
	})
}

// requireNoRevisions asserts, right after a synchronous deletion, that name
// has no revisions left. When some are left it fails, and polls up to
// cascadeTimeout to report whether they go later.
func (e *env) requireNoRevisions(t *testing.T, ns, name string) {
	t.Helper()
	revs := e.listRevisions(t, ns, name)
	if len(revs) == 0 {
		return
	}
	t.Errorf("revisions of %s/%s right after the delete returned: %v, want none (the delete is synchronous)", ns, name, revisionNumbers(revs))
	var left []int64
	e.poll(t, cascadeTimeout, "the revisions to be deleted", func() (bool, error) {
		left = revisionNumbers(e.listRevisions(t, ns, name))
		return len(left) == 0, nil
	})
	t.Logf("they were gone within %v", cascadeTimeout)
}

// makeHistory creates name with revisions 1..n.
func (e *env) makeHistory(t *testing.T, ns, name string, labels map[string]string, n int64) *v1beta1.ConfigSet {
	t.Helper()
	cs := configSet(name, map[string]string{"n": "1"}, nil)
	cs.Labels = labels
	created := e.mustCreate(t, ns, cs)
	for i := int64(2); i <= n; i++ {
		e.setValue(t, ns, name, i)
	}
	e.requireNumbers(t, ns, name, numberRange(1, n))
	return created
}

// The TestHistoryCascade tests check that a ConfigSet's history goes with it:
// on delete and deletecollection in the request itself (local mode has no
// garbage collector), that an orphaning delete removes it too, and that a new
// ConfigSet with the same name starts a history of its own.

// TestHistoryCascadeDelete: delete.
func TestHistoryCascadeDelete(t *testing.T) {
	e := sharedEnv(t)
	const ns = "cascade-delete"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	e.makeHistory(t, ns, "doomed", nil, 3)
	e.makeHistory(t, ns, "bystander", nil, 2)
	if err := client.Delete(e.ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	e.requireNoRevisions(t, ns, "doomed")
	for n := 1; n <= 3; n++ {
		if _, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).Get(e.ctx, fmt.Sprintf("doomed-%d", n), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get doomed-%d: err = %v, want NotFound", n, err)
		}
	}
	e.requireNumbers(t, ns, "bystander", []int64{1, 2})
}

// TestHistoryCascadeBackgroundDelete: delete with a background propagation policy.
func TestHistoryCascadeBackgroundDelete(t *testing.T) {
	e := sharedEnv(t)
	const ns = "cascade-background"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	e.makeHistory(t, ns, "background", nil, 2)
	if err := client.Delete(e.ctx, "background", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	e.requireNoRevisions(t, ns, "background")
}

// TestHistoryCascadeForegroundDelete: delete with a foreground propagation policy.
//
// kubectl delete --cascade=foreground: the ConfigSet must go, and its
// revisions with it, without a garbage collector.
func TestHistoryCascadeForegroundDelete(t *testing.T) {
	e := sharedEnv(t)
	const ns = "cascade-foreground"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	e.makeHistory(t, ns, "foreground", nil, 2)
	if err := client.Delete(e.ctx, "foreground", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	e.requireGone(t, ns, "foreground")
	e.requireNoRevisions(t, ns, "foreground")
}

// TestHistoryCascadeDeleteCollection: deletecollection.
func TestHistoryCascadeDeleteCollection(t *testing.T) {
	e := sharedEnv(t)
	const ns = "cascade-collection"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	selected := map[string]string{"hi-group": "batch"}
	for _, name := range []string{"batch-a", "batch-b", "batch-c"} {
		e.makeHistory(t, ns, name, selected, 2)
	}
	e.makeHistory(t, ns, "batch-other", map[string]string{"hi-group": "other"}, 2)
	if err := client.DeleteCollection(e.ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "hi-group=batch"}); err != nil {
		t.Fatalf("deletecollection: %v", err)
	}
	for _, name := range []string{"batch-a", "batch-b", "batch-c"} {
		if _, err := client.Get(e.ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get %s after deletecollection: err = %v, want NotFound", name, err)
		}
		e.requireNoRevisions(t, ns, name)
	}
	e.requireNumbers(t, ns, "batch-other", []int64{1, 2})
}

// TestHistoryCascadeDryRunDelete: dry-run delete keeps everything.
func TestHistoryCascadeDryRunDelete(t *testing.T) {
	e := sharedEnv(t)
	const ns = "cascade-dry-run"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	e.makeHistory(t, ns, "dry", nil, 2)
	if err := client.Delete(e.ctx, "dry", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("dry-run delete: %v", err)
	}
	e.mustGet(t, ns, "dry")
	e.requireNumbers(t, ns, "dry", []int64{1, 2})
}

// TestHistoryCascadeRecreatedAfterDelete: re-created after a delete.
func TestHistoryCascadeRecreatedAfterDelete(t *testing.T) {
	e := sharedEnv(t)
	const ns = "cascade-recreated"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	old := e.makeHistory(t, ns, "again", nil, 3)
	if err := client.Delete(e.ctx, "again", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	fresh := e.mustCreate(t, ns, configSet("again", map[string]string{"fresh": "yes"}, nil))
	if fresh.UID == old.UID || fresh.Status.CurrentRevision != 1 {
		t.Fatalf("re-created: uid %s (old %s) currentRevision %d, want a new uid and 1", fresh.UID, old.UID, fresh.Status.CurrentRevision)
	}
	revs := e.requireNumbers(t, ns, "again", []int64{1})
	requireRevision(t, &revs[0], fresh, revisionWant{revision: 1, data: map[string]string{"fresh": "yes"}})
}

// TestHistoryCascadeOrphanThenRecreated: orphan, then re-created.
//
// An orphaning delete removes the revisions too (docs/design.md: deleting a
// ConfigSet deletes its revisions). Then a new ConfigSet of the same name
// starts a history of its own at revision 1.
func TestHistoryCascadeOrphanThenRecreated(t *testing.T) {
	e := sharedEnv(t)
	const ns = "cascade-orphan"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	old := e.makeHistory(t, ns, "orphaned", nil, 2)
	if err := client.Delete(e.ctx, "orphaned", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)}); err != nil {
		t.Fatalf("orphaning delete: %v", err)
	}
	// Revisions are part of their ConfigSet: the orphaning delete
	// finishes at once (no garbage-collector finalizer) and takes them too.
	e.requireGone(t, ns, "orphaned")
	if got := revisionNumbers(e.listRevisions(t, ns, "orphaned")); len(got) != 0 {
		t.Errorf("revisions %v after an orphaning delete, want none: history never outlives its ConfigSet", got)
	}

	fresh := e.mustCreate(t, ns, configSet("orphaned", map[string]string{"fresh": "yes"}, nil))
	if fresh.UID == old.UID || fresh.Status.CurrentRevision != 1 {
		t.Fatalf("re-created: uid %s (old %s) currentRevision %d, want a new uid and 1", fresh.UID, old.UID, fresh.Status.CurrentRevision)
	}
	// The history of the new ConfigSet is its own revision 1, owned by
	// it and recording its entries and its author; the old ConfigSet's
	// revisions are not part of it.
	var own []v1beta1.ConfigRevision
	for _, rev := range e.listRevisions(t, ns, "orphaned") {
		if len(rev.OwnerReferences) == 1 && rev.OwnerReferences[0].UID == fresh.UID {
			own = append(own, rev)
		} else if len(rev.OwnerReferences) != 1 || rev.OwnerReferences[0].UID != old.UID {
			t.Errorf("revision %s has ownerReferences %+v, neither the old nor the new ConfigSet", rev.Name, rev.OwnerReferences)
		}
	}
	if got := revisionNumbers(own); !slices.Equal(got, []int64{1}) {
		t.Errorf("revisions owned by the re-created ConfigSet = %v, want [1]", got)
	} else {
		requireRevision(t, &own[0], fresh, revisionWant{revision: 1, data: map[string]string{"fresh": "yes"}})
	}
	// Its next change is revision 2, its own, and it can roll back to 1.
	e.setValue(t, ns, "orphaned", 2)
	got, err := e.cs.ConfigV1beta1().ConfigRevisions(ns).Get(e.ctx, "orphaned-2", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get orphaned-2: %v", err)
	}
	requireRevision(t, got, fresh, revisionWant{revision: 2, data: map[string]string{"n": "2"}})
	back, err := client.Rollback(e.ctx, "orphaned", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rollback of the re-created ConfigSet to 1: %v", err)
	}
	if !sameEntries(back.Spec.Data, back.Spec.SecretData, map[string]string{"fresh": "yes"}, nil) {
		t.Errorf("rollback to 1 restored %v, want the re-created ConfigSet's fresh=yes", back.Spec.Data)
	}
}

// TestHistoryCascadeFinalizerRemoved: delete completed by removing a finalizer.
//
// A ConfigSet with a finalizer is deleted when the finalizer is removed,
// through an update; its revisions must go then.
func TestHistoryCascadeFinalizerRemoved(t *testing.T) {
	e := sharedEnv(t)
	const ns = "cascade-finalizer"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	cs := configSet("finalized", map[string]string{"n": "1"}, nil)
	cs.Finalizers = []string{"hi.capstan.dev/hold"}
	e.mustCreate(t, ns, cs)
	e.setValue(t, ns, "finalized", 2)
	if err := client.Delete(e.ctx, "finalized", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	held := e.mustGet(t, ns, "finalized")
	if held.DeletionTimestamp == nil {
		t.Fatalf("ConfigSet with a finalizer has no deletionTimestamp after delete")
	}
	e.requireNumbers(t, ns, "finalized", []int64{1, 2})
	held.Finalizers = nil
	if _, err := client.Update(e.ctx, held, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("removing the finalizer: %v", err)
	}
	if _, err := client.Get(e.ctx, "finalized", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after removing the finalizer: err = %v, want NotFound", err)
	}
	e.requireNoRevisions(t, ns, "finalized")
}

// TestHistoryCascadeRecreatedAfterFinalizer: re-created right after a finalizer is removed.
//
// The same, with the ConfigSet created again right after the finalizer
// is removed: the new ConfigSet's revision 1 must be there as soon as the
// create returns, written by the request (its author), whatever is left
// of the old ConfigSet's history at that moment. A few rounds, since the
// outcome depends on how far the server got with the old revisions.
func TestHistoryCascadeRecreatedAfterFinalizer(t *testing.T) {
	e := sharedEnv(t)
	const ns = "cascade-finalizer-recreated"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	for round := range 10 {
		name := fmt.Sprintf("refinalized-%d", round)
		cs := configSet(name, map[string]string{"n": "1"}, nil)
		cs.Finalizers = []string{"hi.capstan.dev/hold"}
		e.mustCreate(t, ns, cs)
		e.setValue(t, ns, name, 2)
		if err := client.Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		held := e.mustGet(t, ns, name)
		held.Finalizers = nil
		if _, err := client.Update(e.ctx, held, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("removing the finalizer: %v", err)
		}
		fresh := e.mustCreate(t, ns, configSet(name, map[string]string{"fresh": "yes"}, nil))
		revs := e.listRevisions(t, ns, name)
		if got := revisionNumbers(revs); !slices.Equal(got, []int64{1}) {
			t.Errorf("round %d: revisions right after the re-create = %v, want [1]", round, got)
			continue
		}
		requireRevision(t, &revs[0], fresh, revisionWant{revision: 1, data: map[string]string{"fresh": "yes"}})
	}
}

// requireGone fails the test unless the ConfigSet is deleted within
// cascadeTimeout. When it is held by finalizers that nothing in local mode
// removes, it reports them and removes them, so that the test can go on.
func (e *env) requireGone(t *testing.T, ns, name string) {
	t.Helper()
	client := e.cs.ConfigV1beta1().ConfigSets(ns)
	var held *v1beta1.ConfigSet
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, cascadeTimeout, true, func(ctx context.Context) (bool, error) {
		got, err := client.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		held = got
		return false, nil
	})
	if err == nil {
		return
	}
	if held == nil {
		t.Fatalf("waiting for %s/%s to be deleted: %v", ns, name, err)
	}
	t.Errorf("ConfigSet %s/%s still exists %v after the delete returned: deletionTimestamp %v, finalizers %q; nothing in local mode removes them",
		ns, name, cascadeTimeout, held.DeletionTimestamp, held.Finalizers)
	held.Finalizers = nil
	if _, err := client.Update(e.ctx, held, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("removing the finalizers of %s/%s: %v", ns, name, err)
	}
	if _, err := client.Get(e.ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get %s/%s after removing its finalizers: err = %v, want NotFound", ns, name, err)
	}
}
