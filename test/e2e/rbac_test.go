package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	clientset "capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// authzPropagation bounds how long an RBAC change takes to reach both
// authorizers: kube-apiserver's RBAC informer, and Capstan's cache of
// SubjectAccessReview answers (10 s for denials by default).
const authzPropagation = 30 * time.Second

// TestRBAC checks authorization through kube-apiserver for users with client
// certificates: no rights means 403; the built-in edit role (to which the
// user ClusterRoles aggregate) grants ConfigSets and rollback in a namespace
// and nothing more; view keeps configuration values out; and revisions name
// the user kube-apiserver authenticated.
func TestRBAC(t *testing.T) {
	const ns, otherNS = "e2e-rbac", "e2e-rbac-other"
	createNamespace(t, ns, nil)
	createNamespace(t, otherNS, nil)
	_, core := adminClients(t)
	ctx := t.Context()
	jane := userClient(t, "jane")

	newSet := func(name string) *configv1beta1.ConfigSet {
		return &configv1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"OWNER": name}},
		}
	}
	bind := func(namespace, name, role string, subject rbacv1.Subject) {
		t.Helper()
		_, err := core.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{subject},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("without a binding jane gets 403", func(t *testing.T) {
		_, err := jane.ConfigV1beta1().ConfigSets(ns).List(ctx, metav1.ListOptions{})
		requireForbidden(t, err, `User "jane" cannot list resource "configsets" in API group "config.capstan.dev" in the namespace "e2e-rbac"`)
		_, err = jane.ConfigV1beta1().ConfigSets(ns).Create(ctx, newSet("early"), metav1.CreateOptions{})
		requireForbidden(t, err, `User "jane" cannot create resource "configsets"`)
	})

	t.Run("edit aggregates the config.capstan.dev rules", func(t *testing.T) {
		for _, role := range []string{"edit", "admin"} {
			cr, err := core.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !grants(cr.Rules, "config.capstan.dev", "configsets", "create") || !grants(cr.Rules, "config.capstan.dev", "configsets/rollback", "create") {
				t.Fatalf("ClusterRole %s does not grant create on configsets and configsets/rollback: %+v", role, cr.Rules)
			}
		}
	})

	bind(ns, "jane-edit", "edit", rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "jane"})

	t.Run("bound to edit jane creates, updates and rolls back", func(t *testing.T) {
		sets := jane.ConfigV1beta1().ConfigSets(ns)
		var created *configv1beta1.ConfigSet
		eventually(t, authzPropagation, "jane creates a ConfigSet after the binding", func() error {
			var err error
			created, err = sets.Create(ctx, newSet("janes"), metav1.CreateOptions{})
			return err
		})
		created.Spec.Data["OWNER"] = "jane again"
		if _, err := sets.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		rolled, err := sets.Rollback(ctx, "janes", &configv1beta1.ConfigSetRollback{ObjectMeta: metav1.ObjectMeta{Name: "janes"}, Revision: 1}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rolled.Status.CurrentRevision != 3 || rolled.Spec.Data["OWNER"] != "janes" {
			t.Fatalf("after jane's rollback: revision %d OWNER %q, want 3 and janes", rolled.Status.CurrentRevision, rolled.Spec.Data["OWNER"])
		}
		list, err := jane.ConfigV1beta1().ConfigRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "config.capstan.dev/configset=janes"})
		if err != nil {
			t.Fatal(err)
		}
		var authors []string
		for _, r := range list.Items {
			authors = append(authors, fmt.Sprintf("%d:%s", r.Revision, r.Author))
		}
		slices.Sort(authors)
		if want := []string{"1:jane", "2:jane", "3:jane"}; !slices.Equal(authors, want) {
			t.Fatalf("revision authors %q, want %q", authors, want)
		}
	})

	t.Run("edit does not include status writes, policies or other namespaces", func(t *testing.T) {
		_, err := jane.ConfigV1beta1().ConfigSets(ns).Patch(ctx, "janes", types.MergePatchType,
			[]byte(`{"status":{"conditions":[{"type":"Applied","status":"True","reason":"X","message":"x","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`),
			metav1.PatchOptions{}, "status")
		requireForbidden(t, err, `User "jane" cannot patch resource "configsets/status"`)
		_, err = jane.ConfigV1beta1().ConfigPolicies().Create(ctx, &configv1beta1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "janes-policy"},
			Spec:       configv1beta1.ConfigPolicySpec{ForbiddenKeys: []string{"X"}},
		}, metav1.CreateOptions{})
		requireForbidden(t, err, `User "jane" cannot create resource "configpolicies"`)
		_, err = jane.ConfigV1beta1().ConfigSets(otherNS).Create(ctx, newSet("elsewhere"), metav1.CreateOptions{})
		requireForbidden(t, err, `in the namespace "e2e-rbac-other"`)
	})

	t.Run("a group binding reaches Capstan through the front proxy", func(t *testing.T) {
		bind(ns, "editors-edit", "edit", rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "e2e-editors"})
		gina := userClient(t, "gina", "e2e-editors")
		eventually(t, authzPropagation, "gina (group e2e-editors) creates a ConfigSet", func() error {
			_, err := gina.ConfigV1beta1().ConfigSets(ns).Create(ctx, newSet("ginas"), metav1.CreateOptions{})
			return err
		})
		list, err := gina.ConfigV1beta1().ConfigRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "config.capstan.dev/configset=ginas"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || list.Items[0].Author != "gina" {
			t.Fatalf("revisions of ginas: %+v, want one by gina", list.Items)
		}
	})

	t.Run("rollback and status answer only those who may read the ConfigSet", func(t *testing.T) {
		// Both subresources answer with the whole ConfigSet, secretData
		// included: a role with only their verb must not learn it.
		role := func(name string, rules ...rbacv1.PolicyRule) {
			t.Helper()
			if _, err := core.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		rule := func(resource string, verbs ...string) rbacv1.PolicyRule {
			return rbacv1.PolicyRule{APIGroups: []string{"config.capstan.dev"}, Resources: []string{resource}, Verbs: verbs}
		}
		role("rollback-only", rule("configsets/rollback", "create"))
		role("status-only", rule("configsets/status", "get", "update", "patch"))
		bindRole := func(name, roleName, user string) {
			t.Helper()
			if _, err := core.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: roleName},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		bindRole("rory-rollback", "rollback-only", "rory")
		bindRole("stan-status", "status-only", "stan")
		rory, stan := userClient(t, "rory"), userClient(t, "stan")
		const needsGet = "also needs get on configsets"

		rollback := func(dryRun []string) error {
			_, err := rory.ConfigV1beta1().ConfigSets(ns).Rollback(ctx, "janes", &configv1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{DryRun: dryRun})
			return err
		}
		eventually(t, authzPropagation, "rory's rollback reaches Capstan's own check", func() error {
			if err := rollback(nil); err == nil || !strings.Contains(err.Error(), needsGet) {
				return fmt.Errorf("rollback: %v", err)
			}
			return nil
		})
		requireForbidden(t, rollback([]string{metav1.DryRunAll}), needsGet)
		_, err := rory.ConfigV1beta1().ConfigSets(ns).Rollback(ctx, "no-such-set", &configv1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
		requireForbidden(t, err, needsGet)

		_, err = stan.ConfigV1beta1().ConfigSets(ns).Patch(ctx, "janes", types.MergePatchType,
			[]byte(`{"status":{"conditions":[{"type":"Applied","status":"True","reason":"X","message":"x","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`),
			metav1.PatchOptions{}, "status")
		requireForbidden(t, err, needsGet)
		err = stan.ConfigV1beta1().RESTClient().Get().Namespace(ns).Resource("configsets").Name("janes").SubResource("status").Do(ctx).Error()
		requireForbidden(t, err, needsGet)

		// With get beside it, the rollback goes through.
		role("configset-reader", rule("configsets", "get"))
		bindRole("rory-read", "configset-reader", "rory")
		eventually(t, authzPropagation, "rory rolls back once he may read the ConfigSet", func() error { return rollback(nil) })
	})

	t.Run("view shows policies but no configuration values", func(t *testing.T) {
		if _, err := core.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-victor-view"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "victor"}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		victor := userClient(t, "victor")
		eventually(t, authzPropagation, "victor (view) lists ConfigPolicies", func() error {
			_, err := victor.ConfigV1beta1().ConfigPolicies().List(ctx, metav1.ListOptions{})
			return err
		})
		_, err := victor.ConfigV1beta1().ConfigSets(ns).Get(ctx, "janes", metav1.GetOptions{})
		requireForbidden(t, err, `User "victor" cannot get resource "configsets"`)
		_, err = victor.ConfigV1beta1().ConfigRevisions(ns).List(ctx, metav1.ListOptions{})
		requireForbidden(t, err, `User "victor" cannot list resource "configrevisions"`)
	})
}

// userClient is Capstan's clientset through kube-apiserver as user in groups.
func userClient(t *testing.T, user string, groups ...string) *clientset.Clientset {
	t.Helper()
	path, err := testCluster.UserKubeconfig(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	return capstanClient(t, path)
}

// requireForbidden fails unless err is a 403 whose message contains want.
func requireForbidden(t *testing.T, err error, want string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Fatalf("got %v, want 403 Forbidden", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("403 message %q does not contain %q", err.Error(), want)
	}
}

// grants reports whether rules allow verb on group/resource.
func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if (slices.Contains(r.APIGroups, group) || slices.Contains(r.APIGroups, "*")) &&
			(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*")) &&
			(slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, "*")) {
			return true
		}
	}
	return false
}
