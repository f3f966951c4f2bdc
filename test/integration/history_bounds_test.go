package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// TestHistoryByteBudget: beside revisionHistoryLimit, the server bounds the
// bytes of entries one ConfigSet's revisions hold (--history-max-bytes). A
// tenant that raises the limit and writes large values keeps a short history,
// the current revision always stays, and the writes that prune say so.
func TestHistoryByteBudget(t *testing.T) {
	// A server of its own: --history-max-bytes sets the byte budget.
	e := startEnv(t, "--history-max-bytes=4096")
	const ns, name = "bytes", "big"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	set := configSet(name, map[string]string{"blob": strings.Repeat("a", 1496)}, nil)
	set.Spec.RevisionHistoryLimit = ptr.To[int32](1000)
	e.mustCreate(t, ns, set)
	pruned := 0
	for i := 0; i < 20; i++ {
		e.warnings.take()
		e.mustUpdate(t, ns, name, func(cs *v1beta1.ConfigSet) {
			cs.Spec.Data["blob"] = strings.Repeat(string(rune('b'+i%20)), 1496)
		})
		for _, w := range e.warnings.take() {
			if strings.Contains(w, "pruned to keep its history within 4096 bytes") {
				pruned++
			}
		}
	}
	// Each revision holds 1,500 bytes of entries: two fit in 4,096.
	e.poll(t, 10*time.Second, "history of the last two revisions", func() (bool, error) {
		got := revisionNumbers(e.listRevisions(t, ns, name))
		return fmt.Sprint(got) == "[20 21]", nil
	})
	if pruned == 0 {
		t.Errorf("no write warned that it pruned history by bytes")
	}

	// The current revision stays even when it alone is over the budget.
	e.mustUpdate(t, ns, name, func(cs *v1beta1.ConfigSet) { cs.Spec.Data["blob"] = strings.Repeat("z", 8000) })
	e.poll(t, 10*time.Second, "only the current revision", func() (bool, error) {
		return fmt.Sprint(revisionNumbers(e.listRevisions(t, ns, name))) == "[22]", nil
	})
	rb, err := client.Rollback(e.ctx, name, &v1beta1.ConfigSetRollback{Revision: 20}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("rollback to a revision pruned by bytes: %v %v, want 404", rb, err)
	}
}

// TestRevisionsAreOnlyRewrittenUnchanged: a PUT of a revision is the explicit
// path that re-encrypts it after a key rotation; it must send the revision
// back exactly as stored, and any change is a 422.
func TestRevisionsAreOnlyRewrittenUnchanged(t *testing.T) {
	e := sharedEnv(t)
	const ns, name = "rewrite", "app"
	e.mustCreate(t, ns, configSet(name, map[string]string{"k": "v"}, map[string][]byte{"s": []byte("secret")}))
	revs := e.listRevisions(t, ns, name)
	if len(revs) != 1 {
		t.Fatalf("revisions %v, want 1", revisionNumbers(revs))
	}
	rev := revs[0]
	put := func(r *v1beta1.ConfigRevision) (*v1beta1.ConfigRevision, error) {
		r.APIVersion, r.Kind = "config.capstan.dev/v1beta1", "ConfigRevision"
		out := &v1beta1.ConfigRevision{}
		err := e.cs.ConfigV1beta1().RESTClient().Put().Namespace(ns).Resource("configrevisions").Name(r.Name).Body(r).Do(e.ctx).Into(out)
		return out, err
	}

	got, err := put(rev.DeepCopy())
	if err != nil {
		t.Fatalf("unchanged PUT: %v", err)
	}
	if got.ResourceVersion != rev.ResourceVersion || got.Author != rev.Author || string(got.SecretData["s"]) != "secret" {
		t.Errorf("unchanged PUT returned resourceVersion %s author %q, want %s and %q, unchanged", got.ResourceVersion, got.Author, rev.ResourceVersion, rev.Author)
	}
	for what, change := range map[string]func(*v1beta1.ConfigRevision){
		"author":     func(r *v1beta1.ConfigRevision) { r.Author = "mallory" },
		"data":       func(r *v1beta1.ConfigRevision) { r.Data["k"] = "forged" },
		"secretData": func(r *v1beta1.ConfigRevision) { r.SecretData["s"] = []byte("forged") },
		"label":      func(r *v1beta1.ConfigRevision) { r.Labels["extra"] = "x" },
		"annotation": func(r *v1beta1.ConfigRevision) { r.Annotations = map[string]string{"x": "y"} },
	} {
		changed := rev.DeepCopy()
		change(changed)
		if _, err := put(changed); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "never change") {
			t.Errorf("PUT that changes the %s: %v, want 422 saying revisions never change", what, err)
		}
	}
	after := e.listRevisions(t, ns, name)
	if len(after) != 1 || after[0].ResourceVersion != rev.ResourceVersion {
		t.Errorf("the refused PUTs changed the revision: %+v", after)
	}
}

// TestAuthorWhenTheClientTimesOut: a client whose ?timeout= passes right
// after the ConfigSet is stored gets a timeout, but the change it made is
// recorded by its request, with its user as author, not later by the
// reconciler. Timeouts from 1 ms up hit every point of the request; the test
// needs at least one that stored the change and still timed out.
func TestAuthorWhenTheClientTimesOut(t *testing.T) {
	// A long grace period: a revision the request failed to write would be
	// restored by the reconciler only after the test looked.
	// A server of its own: --history-repair-grace-period=5m keeps the
	// reconciler from repairing what the test looks at.
	e := startEnv(t, "--history-repair-grace-period=5m")
	cs, ctx := e.cs, e.ctx
	const ns, name = "timeouts", "app"
	client := cs.ConfigV1beta1().ConfigSets(ns)
	if _, err := client.Create(ctx, configSet(name, map[string]string{"n": "0"}, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	storedButTimedOut := 0
	for attempt := 1; attempt <= 300 && storedButTimedOut < 3; attempt++ {
		before, err := client.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before.Spec.Data["n"] = fmt.Sprint(attempt)
		timeout := time.Duration(1+attempt%40) * 500 * time.Microsecond
		reqCtx, cancel := context.WithTimeout(ctx, timeout)
		_, err = client.Update(reqCtx, before, metav1.UpdateOptions{})
		cancel()
		after, getErr := client.Get(ctx, name, metav1.GetOptions{})
		if getErr != nil {
			t.Fatal(getErr)
		}
		rev := after.Status.CurrentRevision
		if rev == before.Status.CurrentRevision {
			continue // not stored: nothing to record
		}
		if err != nil {
			storedButTimedOut++
		}
		var got *v1beta1.ConfigRevision
		e.poll(t, 10*time.Second, fmt.Sprintf("attempt %d (client error %v): revision %d to be written", attempt, err, rev), func() (bool, error) {
			r, err := cs.ConfigV1beta1().ConfigRevisions(ns).Get(ctx, config.RevisionName(name, rev), metav1.GetOptions{})
			got = r
			return err == nil, err
		})
		// The revision holds what the ConfigSet held at that revision. Which
		// attempt wrote it is not known: a request whose client left goes on,
		// and may store its change after the next attempt started.
		if got.Author != adminUser || got.Data["n"] != after.Spec.Data["n"] {
			t.Fatalf("attempt %d (client error %v): revision %d by %q with n=%s, want by %q with n=%s", attempt, err, rev, got.Author, got.Data["n"], adminUser, after.Spec.Data["n"])
		}
	}
	t.Logf("changes stored after their client timed out: %d", storedButTimedOut)
	if storedButTimedOut == 0 {
		t.Fatal("no attempt stored its change after the client's timeout; the test did not exercise the case")
	}
}
