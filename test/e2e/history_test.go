package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/test/utils/controlplane"
)

const changeCauseAnnotation = "config.capstan.dev/change-cause"

// TestHistoryAndRollback changes a ConfigSet through kube-apiserver and checks
// the revisions the server records (author as kube-apiserver authenticated
// the admin, change cause, entries), rollback through the clientset and the
// kubectl plugin, and that users cannot write revisions.
func TestHistoryAndRollback(t *testing.T) {
	const ns = "e2e-history"
	createNamespace(t, ns, nil)
	client, _ := adminClients(t)
	ctx := t.Context()
	sets := client.ConfigV1beta1().ConfigSets(ns)
	revisions := client.ConfigV1beta1().ConfigRevisions(ns)

	cs, err := sets.Create(ctx, &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Annotations: map[string]string{changeCauseAnnotation: "initial settings"}},
		Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"LOG_LEVEL": "info"}, SecretData: map[string][]byte{"KEY": []byte("k1")}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs.Annotations[changeCauseAnnotation] = "debug a timeout"
	cs.Spec.Data["LOG_LEVEL"] = "debug"
	if cs, err = sets.Update(ctx, cs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if cs.Status.CurrentRevision != 2 {
		t.Fatalf("currentRevision %d after one update, want 2", cs.Status.CurrentRevision)
	}

	t.Run("revisions record author, cause and entries", func(t *testing.T) {
		list, err := revisions.List(ctx, metav1.ListOptions{LabelSelector: "config.capstan.dev/configset=checkout"})
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64]configv1beta1.ConfigRevision{}
		for _, r := range list.Items {
			got[r.Revision] = r
		}
		if len(got) != 2 {
			t.Fatalf("%d revisions, want 2: %+v", len(list.Items), list.Items)
		}
		for rev, want := range map[int64]struct{ level, cause string }{1: {"info", "initial settings"}, 2: {"debug", "debug a timeout"}} {
			r := got[rev]
			if r.ConfigSetName != "checkout" || r.Author != controlplane.AdminUser || r.ChangeCause != want.cause ||
				r.Data["LOG_LEVEL"] != want.level || string(r.SecretData["KEY"]) != "k1" {
				t.Errorf("revision %d: configSetName %q author %q cause %q LOG_LEVEL %q KEY %q; want checkout, %q, %q, %q, k1",
					rev, r.ConfigSetName, r.Author, r.ChangeCause, r.Data["LOG_LEVEL"], r.SecretData["KEY"], controlplane.AdminUser, want.cause, want.level)
			}
			if owners := r.OwnerReferences; len(owners) != 1 || owners[0].UID != cs.UID || owners[0].Controller == nil || !*owners[0].Controller {
				t.Errorf("revision %d owner references %+v, want the ConfigSet %s as controller", rev, owners, cs.UID)
			}
		}
	})

	t.Run("field selector on revision", func(t *testing.T) {
		list, err := revisions.List(ctx, metav1.ListOptions{FieldSelector: "configSetName=checkout,revision=2"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || list.Items[0].Revision != 2 {
			t.Fatalf("configSetName=checkout,revision=2 selected %+v", list.Items)
		}
	})

	t.Run("rollback restores revision 1 as revision 3", func(t *testing.T) {
		rolled, err := sets.Rollback(ctx, "checkout", &configv1beta1.ConfigSetRollback{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout"}, Revision: 1,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rolled.Status.CurrentRevision != 3 || rolled.Spec.Data["LOG_LEVEL"] != "info" {
			t.Fatalf("after rollback: revision %d LOG_LEVEL %q, want 3 and info", rolled.Status.CurrentRevision, rolled.Spec.Data["LOG_LEVEL"])
		}
		list, err := revisions.List(ctx, metav1.ListOptions{FieldSelector: "configSetName=checkout,revision=3"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 {
			t.Fatalf("revision 3: %+v", list.Items)
		}
		if r := list.Items[0]; r.RollbackOf != 1 || r.Author != controlplane.AdminUser || r.Data["LOG_LEVEL"] != "info" {
			t.Fatalf("revision 3: rollbackOf %d author %q LOG_LEVEL %q, want 1, %q, info", r.RollbackOf, r.Author, r.Data["LOG_LEVEL"], controlplane.AdminUser)
		}
	})

	t.Run("rollback to a revision that is not kept is 404", func(t *testing.T) {
		_, err := sets.Rollback(ctx, "checkout", &configv1beta1.ConfigSetRollback{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout"}, Revision: 99,
		}, metav1.CreateOptions{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("rollback to 99: %v, want 404", err)
		}
	})

	t.Run("users cannot create revisions", func(t *testing.T) {
		// The generated client has no Create for them, so POST by hand.
		forged := `{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigRevision","metadata":{"name":"checkout-forged"},` +
			`"configSetName":"checkout","revision":50,"author":"someone-else"}`
		err := client.ConfigV1beta1().RESTClient().Post().Namespace(ns).Resource("configrevisions").
			SetHeader("Content-Type", "application/json").Body([]byte(forged)).Do(ctx).Error()
		if !apierrors.IsMethodNotSupported(err) {
			t.Fatalf("creating a ConfigRevision: %v, want 405 MethodNotAllowed", err)
		}
	})

	t.Run("kubectl get cfgrev prints the table", func(t *testing.T) {
		k := newKubectl(t, testCluster.AdminKubeconfig)
		out := k.Run(t, "get", "cfgrev", "-n", ns, "-l", "config.capstan.dev/configset=checkout")
		header, rows := tableRows(t, out)
		if want := []string{"NAME", "CONFIGSET", "REVISION", "AUTHOR", "CAUSE", "AGE"}; !slices.Equal(header, want) {
			t.Fatalf("header %q, want %q", header, want)
		}
		// CAUSE has spaces, so only the fields before it are compared.
		if row := rowNamed(t, rows, "checkout-2", out); !slices.Equal(row[1:4], []string{"checkout", "2", controlplane.AdminUser}) {
			t.Fatalf("row %q, want checkout-2 checkout 2 %s", row, controlplane.AdminUser)
		}
	})

	t.Run("kubectl capstan history and rollback through kube-apiserver", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(repoRoot, "bin", "kubectl-capstan")); err != nil {
			t.Fatalf("bin/kubectl-capstan is missing (`make build` builds it): %v", err)
		}
		k := newKubectl(t, testCluster.AdminKubeconfig)
		out := k.Run(t, "capstan", "rollback", "checkout", "--to", "2", "-n", ns)
		requireContains(t, out, "checkout")
		out = k.Run(t, "capstan", "history", "checkout", "-n", ns)
		header, rows := tableRows(t, out)
		if want := []string{"CURRENT", "REVISION", "AUTHOR", "CAUSE", "ROLLBACK-OF", "KEYS", "AGE"}; !slices.Equal(header, want) {
			t.Fatalf("header %q, want %q", header, want)
		}
		if len(rows) != 4 {
			t.Fatalf("%d revisions, want 4:\n%s", len(rows), out)
		}
		// The current one is marked "*" in the first column and restores revision 2.
		last := rows[3]
		if !slices.Equal(last[:3], []string{"*", "4", controlplane.AdminUser}) || !slices.Contains(last, "2") {
			t.Fatalf("last row %q, want * 4 %s … rollback of 2:\n%s", last, controlplane.AdminUser, out)
		}
		cs, err := sets.Get(ctx, "checkout", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cs.Status.CurrentRevision != 4 || cs.Spec.Data["LOG_LEVEL"] != "debug" {
			t.Fatalf("after kubectl capstan rollback --to 2: revision %d LOG_LEVEL %q, want 4 and debug", cs.Status.CurrentRevision, cs.Spec.Data["LOG_LEVEL"])
		}
	})
}
