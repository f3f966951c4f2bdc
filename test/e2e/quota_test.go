package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/quota"
)

// quotaSettles bounds how long the usage of a quota takes to follow a change:
// kube-controller-manager finds Capstan's group through discovery (every
// 30 s) before it counts ConfigSets, and recounts after deletions; Capstan
// recounts revisions as its index sees them come and go.
const quotaSettles = 90 * time.Second

// TestResourceQuota checks that object-count quotas on ConfigSets and
// ConfigRevisions, written as for any resource, are enforced by Capstan's
// ResourceQuota admission with the revisions the server writes counted, and
// that the usage follows deletions and pruning.
func TestResourceQuota(t *testing.T) {
	const ns = "e2e-quota"
	createNamespace(t, ns, nil)
	client, core := adminClients(t)
	ctx := t.Context()
	quotas := core.CoreV1().ResourceQuotas(ns)
	for name, hard := range map[string]corev1.ResourceList{
		"configsets":      {quota.ConfigSetsCount: resource.MustParse("2")},
		"configrevisions": {quota.ConfigRevisionsCount: resource.MustParse("4")},
	} {
		q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}
		if _, err := quotas.Create(ctx, q, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// requireUsed waits until the quota named for res reports used.
	requireUsed := func(res corev1.ResourceName, used int64) {
		t.Helper()
		name := strings.TrimPrefix(strings.TrimSuffix(string(res), ".config.capstan.dev"), "count/")
		eventually(t, quotaSettles, fmt.Sprintf("quota %s used %d", name, used), func() error {
			q, err := quotas.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			got, ok := q.Status.Used[res]
			if _, hard := q.Status.Hard[res]; !ok || !hard {
				return fmt.Errorf("status %+v has no usage or limit of %s yet", q.Status, res)
			}
			if got.Value() != used {
				return fmt.Errorf("used %s, want %d", got.String(), used)
			}
			return nil
		})
	}
	requireUsed(quota.ConfigSetsCount, 0)
	requireUsed(quota.ConfigRevisionsCount, 0)

	sets := client.ConfigV1beta1().ConfigSets(ns)
	create := func(name string) error {
		_, err := sets.Create(ctx, &configv1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"A": "1"}},
		}, metav1.CreateOptions{})
		return err
	}
	patch := func(name, body string) error {
		_, err := sets.Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
		return err
	}
	refused := func(err error, quotaName string, res corev1.ResourceName, limit int) {
		t.Helper()
		want := fmt.Sprintf("exceeded quota: %s, requested: %s=1, used: %s=%d, limited: %s=%d", quotaName, res, res, limit, res, limit)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want 403 %q", err, want)
		}
	}

	if err := create("a"); err != nil {
		t.Fatal(err)
	}
	requireUsed(quota.ConfigSetsCount, 1)
	requireUsed(quota.ConfigRevisionsCount, 1)
	for _, v := range []string{"2", "3", "4"} {
		if err := patch("a", `{"spec":{"data":{"A":"`+v+`"}}}`); err != nil {
			t.Fatal(err)
		}
	}
	requireUsed(quota.ConfigRevisionsCount, 4)

	// A change of the entries would make a fifth revision; so would a rollback.
	refused(patch("a", `{"spec":{"data":{"A":"5"}}}`), "configrevisions", quota.ConfigRevisionsCount, 4)
	_, err := sets.Rollback(ctx, "a", &configv1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
	refused(err, "configrevisions", quota.ConfigRevisionsCount, 4)
	// A change that writes no revision costs nothing.
	if err := patch("a", `{"metadata":{"labels":{"team":"checkout"}}}`); err != nil {
		t.Fatalf("a change without a new revision, at the revision quota: %v", err)
	}
	a, err := sets.Get(ctx, "a", metav1.GetOptions{})
	if err != nil || a.Status.CurrentRevision != 4 || a.Spec.Data["A"] != "4" {
		t.Fatalf("a after the refusals: %+v, %v; want revision 4 with A=4", a, err)
	}

	// Pruning frees revisions: the usage follows the index.
	if err := patch("a", `{"spec":{"revisionHistoryLimit":2}}`); err != nil {
		t.Fatal(err)
	}
	requireUsed(quota.ConfigRevisionsCount, 2)

	if err := create("b"); err != nil {
		t.Fatal(err)
	}
	requireUsed(quota.ConfigSetsCount, 2)
	requireUsed(quota.ConfigRevisionsCount, 3)
	refused(create("c"), "configsets", quota.ConfigSetsCount, 2)

	// Deleting a ConfigSet frees it and its revisions.
	if err := sets.Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	requireUsed(quota.ConfigSetsCount, 1)
	requireUsed(quota.ConfigRevisionsCount, 2)
	if err := create("c"); err != nil {
		t.Fatalf("create after a deletion freed the quota: %v", err)
	}
}
