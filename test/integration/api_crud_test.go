package integration

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"reflect"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// The TestAPIConfigSetCRUD tests create, read, list, update and delete
// ConfigSets through both served versions, each in namespaces of its own.

// TestAPIConfigSetCRUDV1beta1: v1beta1.
func TestAPIConfigSetCRUDV1beta1(t *testing.T) {
	e := sharedEnv(t)

	const ns = "crud-beta"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)
	created, err := client.Create(e.ctx, &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"tier": "web"}},
		Spec: v1beta1.ConfigSetSpec{
			Data:       map[string]string{"LOG_LEVEL": "debug", "port": "8080"},
			SecretData: map[string][]byte{"password": []byte("s3cr3t")},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.Namespace != ns || created.Name != "app" || created.UID == "" || created.ResourceVersion == "" {
		t.Errorf("create returned metadata %+v; want namespace %q, name app, a UID and a resourceVersion", created.ObjectMeta, ns)
	}
	if created.CreationTimestamp.IsZero() {
		t.Errorf("create returned no creationTimestamp")
	}

	got, err := client.Get(e.ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if want := map[string]string{"LOG_LEVEL": "debug", "port": "8080"}; !reflect.DeepEqual(got.Spec.Data, want) {
		t.Errorf("get data = %v, want %v", got.Spec.Data, want)
	}
	if !bytes.Equal(got.Spec.SecretData["password"], []byte("s3cr3t")) || len(got.Spec.SecretData) != 1 {
		t.Errorf("get secretData = %v, want password=s3cr3t", got.Spec.SecretData)
	}
	if got.UID != created.UID || got.ResourceVersion != created.ResourceVersion {
		t.Errorf("get uid/rv = %s/%s, want %s/%s", got.UID, got.ResourceVersion, created.UID, created.ResourceVersion)
	}
	if got.Labels["tier"] != "web" {
		t.Errorf("get labels = %v, want tier=web", got.Labels)
	}

	createNamed := func(name string) {
		if _, err := client.Create(e.ctx, configSet(name, map[string]string{"k": name}, nil), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	createNamed("other")
	if _, err := e.cs.ConfigV1beta1().ConfigSets("crud-beta-elsewhere").Create(e.ctx, configSet("elsewhere", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create in another namespace: %v", err)
	}
	list, err := client.List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if names := namesOf(itemPtrs(list.Items)); !reflect.DeepEqual(names, []string{"app", "other"}) {
		t.Errorf("list names = %v, want [app other] (only this namespace, sorted)", names)
	}
	if list.ResourceVersion == "" {
		t.Errorf("list has no resourceVersion")
	}
	all, err := e.cs.ConfigV1beta1().ConfigSets("").List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list across namespaces: %v", err)
	}
	var allNames []string
	for _, item := range all.Items {
		if item.Namespace == ns || item.Namespace == "crud-beta-elsewhere" {
			allNames = append(allNames, item.Namespace+"/"+item.Name)
		}
	}
	slices.Sort(allNames)
	if want := []string{"crud-beta-elsewhere/elsewhere", "crud-beta/app", "crud-beta/other"}; !reflect.DeepEqual(allNames, want) {
		t.Errorf("list across namespaces = %v, want %v", allNames, want)
	}

	got.Spec.Data["port"] = "9090"
	delete(got.Spec.Data, "LOG_LEVEL")
	got.Spec.SecretData["token"] = []byte("t0k")
	updated, err := client.Update(e.ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.ResourceVersion == got.ResourceVersion {
		t.Errorf("update kept resourceVersion %s", updated.ResourceVersion)
	}
	reread, err := client.Get(e.ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get after update: %v", err)
	}
	if want := map[string]string{"port": "9090"}; !reflect.DeepEqual(reread.Spec.Data, want) {
		t.Errorf("data after update = %v, want %v", reread.Spec.Data, want)
	}
	if len(reread.Spec.SecretData) != 2 || string(reread.Spec.SecretData["token"]) != "t0k" || string(reread.Spec.SecretData["password"]) != "s3cr3t" {
		t.Errorf("secretData after update = %v, want password and token", reread.Spec.SecretData)
	}

	if err := client.Delete(e.ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := client.Get(e.ctx, "app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: err = %v, want NotFound", err)
	}
	if err := client.Delete(e.ctx, "app", metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("second delete: err = %v, want NotFound", err)
	}
	if _, err := client.Update(e.ctx, reread, metav1.UpdateOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("update of a deleted ConfigSet: err = %v, want NotFound (no create on update)", err)
	}
	list, err = client.List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list after delete: %v", err)
	}
	if names := namesOf(itemPtrs(list.Items)); !reflect.DeepEqual(names, []string{"other"}) {
		t.Errorf("list after delete = %v, want [other]", names)
	}
}

// TestAPIConfigSetCRUDV1alpha1: v1alpha1.
func TestAPIConfigSetCRUDV1alpha1(t *testing.T) {
	e := sharedEnv(t)

	const ns = "crud-alpha"
	client := e.cs.ConfigV1alpha1().ConfigSets(ns)
	secret := base64.StdEncoding.EncodeToString([]byte("hunter2"))
	created, err := client.Create(e.ctx, &v1alpha1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec: v1alpha1.ConfigSetSpec{Entries: []v1alpha1.ConfigEntry{
			{Key: "b", Value: "2"},
			{Key: "a", Value: "1"},
			{Key: "pw", Value: secret, Secret: true},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.UID == "" || created.Status.CurrentRevision != 1 {
		t.Errorf("create returned uid %q, currentRevision %d; want a UID and revision 1", created.UID, created.Status.CurrentRevision)
	}
	got, err := client.Get(e.ctx, "legacy", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	want := []v1alpha1.ConfigEntry{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "pw", Value: secret, Secret: true}}
	if !reflect.DeepEqual(got.Spec.Entries, want) {
		t.Errorf("get entries = %+v, want %+v (sorted by key)", got.Spec.Entries, want)
	}
	if got.APIVersion != "" && got.APIVersion != v1alpha1.SchemeGroupVersion.String() {
		t.Errorf("get apiVersion = %q", got.APIVersion)
	}

	if _, err := client.Create(e.ctx, &v1alpha1.ConfigSet{ObjectMeta: metav1.ObjectMeta{Name: "second"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create second: %v", err)
	}
	list, err := client.List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if names := namesOf(itemPtrs(list.Items)); !reflect.DeepEqual(names, []string{"legacy", "second"}) {
		t.Errorf("list names = %v, want [legacy second]", names)
	}
	if len(list.Items) == 2 && !reflect.DeepEqual(list.Items[0].Spec.Entries, want) {
		t.Errorf("list entries = %+v, want %+v", list.Items[0].Spec.Entries, want)
	}

	got.Spec.Entries = []v1alpha1.ConfigEntry{{Key: "a", Value: "one"}, {Key: "pw", Value: secret, Secret: true}}
	updated, err := client.Update(e.ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.Status.CurrentRevision != 2 {
		t.Errorf("currentRevision after entries change = %d, want 2", updated.Status.CurrentRevision)
	}
	beta, err := e.cs.ConfigV1beta1().ConfigSets(ns).Get(e.ctx, "legacy", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v1beta1: %v", err)
	}
	if !reflect.DeepEqual(beta.Spec.Data, map[string]string{"a": "one"}) || string(beta.Spec.SecretData["pw"]) != "hunter2" || len(beta.Spec.SecretData) != 1 {
		t.Errorf("v1beta1 view after v1alpha1 update: data %v secretData %v; want a=one, pw=hunter2", beta.Spec.Data, beta.Spec.SecretData)
	}

	if err := client.Delete(e.ctx, "legacy", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := client.Get(e.ctx, "legacy", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: err = %v, want NotFound", err)
	}
	if _, err := e.cs.ConfigV1beta1().ConfigSets(ns).Get(e.ctx, "legacy", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("v1beta1 get after v1alpha1 delete: err = %v, want NotFound", err)
	}
}

// TestAPIConfigSetDeleteCollection: deletecollection.
func TestAPIConfigSetDeleteCollection(t *testing.T) {
	e := sharedEnv(t)

	const ns = "crud-collection"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)
	for _, name := range []string{"x1", "x2", "y1"} {
		obj := configSet(name, map[string]string{"k": "v"}, nil)
		obj.Labels = map[string]string{"group": name[:1]}
		e.mustCreate(t, ns, obj)
	}
	if err := client.DeleteCollection(e.ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "group=x"}); err != nil {
		t.Fatalf("deletecollection: %v", err)
	}
	list, err := client.List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if names := namesOf(itemPtrs(list.Items)); !reflect.DeepEqual(names, []string{"y1"}) {
		t.Errorf("after deletecollection group=x: %v, want [y1]", names)
	}
}

// TestAPIConfigPolicyCRUD creates, reads, lists, updates and deletes the
// cluster-scoped ConfigPolicies through both served versions.
func TestAPIConfigPolicyCRUD(t *testing.T) {
	// A server of its own: the test lists every ConfigPolicy and expects only its own.
	e := startEnv(t)
	// Every policy selects only ConfigSets with this label, which none has, so
	// that the policies of this test never get in the way of another write.
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"apitest-never": "selected"}}

	t.Run("v1beta1", func(t *testing.T) {
		client := e.cs.ConfigV1beta1().ConfigPolicies()
		created, err := client.Create(e.ctx, &v1beta1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "keys"},
			Spec: v1beta1.ConfigPolicySpec{
				Selector:      selector,
				RequiredKeys:  []string{"owner"},
				ForbiddenKeys: []string{"password"},
				KeyPattern:    "^[a-z_]+$",
				MaxKeys:       ptr.To[int32](20),
				MaxBytes:      ptr.To[int64](4096),
				Rules:         []v1beta1.ConfigPolicyRule{{Expression: "size(data) < 100", Message: "too many"}},
				Enforcement:   v1beta1.EnforcementWarn,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if created.Namespace != "" {
			t.Errorf("cluster-scoped policy has namespace %q", created.Namespace)
		}
		if created.Generation != 1 {
			t.Errorf("generation = %d, want 1", created.Generation)
		}
		got, err := client.Get(e.ctx, "keys", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if !reflect.DeepEqual(got.Spec.RequiredKeys, []string{"owner"}) || !reflect.DeepEqual(got.Spec.ForbiddenKeys, []string{"password"}) ||
			got.Spec.KeyPattern != "^[a-z_]+$" || got.Spec.MaxKeys == nil || *got.Spec.MaxKeys != 20 ||
			got.Spec.MaxBytes == nil || *got.Spec.MaxBytes != 4096 || got.Spec.Enforcement != v1beta1.EnforcementWarn ||
			len(got.Spec.Rules) != 1 || got.Spec.Rules[0].Expression != "size(data) < 100" || got.Spec.Rules[0].Message != "too many" ||
			!reflect.DeepEqual(got.Spec.Selector, selector) {
			t.Errorf("get spec = %+v, not what was created", got.Spec)
		}

		if _, err := client.Create(e.ctx, &v1beta1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "second"},
			Spec:       v1beta1.ConfigPolicySpec{Selector: selector},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create second: %v", err)
		}
		list, err := client.List(e.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if names := namesOf(itemPtrs(list.Items)); !reflect.DeepEqual(names, []string{"keys", "second"}) {
			t.Errorf("list names = %v, want [keys second]", names)
		}

		var updated *v1beta1.ConfigPolicy
		e.onFreshPolicy(t, "keys", func(p *v1beta1.ConfigPolicy) error {
			p.Spec.Enforcement = v1beta1.EnforcementDeny
			p.Spec.ForbiddenKeys = []string{"password", "secret"}
			var err error
			updated, err = client.Update(e.ctx, p, metav1.UpdateOptions{})
			return err
		})
		if updated.Generation != 2 {
			t.Errorf("generation after spec update = %d, want 2", updated.Generation)
		}
		reread, err := client.Get(e.ctx, "keys", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get after update: %v", err)
		}
		if reread.Spec.Enforcement != v1beta1.EnforcementDeny || !reflect.DeepEqual(reread.Spec.ForbiddenKeys, []string{"password", "secret"}) {
			t.Errorf("spec after update = %+v", reread.Spec)
		}

		if err := client.Delete(e.ctx, "keys", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := client.Get(e.ctx, "keys", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get after delete: err = %v, want NotFound", err)
		}
		if err := client.Delete(e.ctx, "second", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete second: %v", err)
		}
	})

	t.Run("v1alpha1", func(t *testing.T) {
		client := e.cs.ConfigV1alpha1().ConfigPolicies()
		if _, err := client.Create(e.ctx, &v1alpha1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "alpha"},
			Spec: v1alpha1.ConfigPolicySpec{
				Selector:         selector,
				RequireImmutable: true,
				Enforcement:      v1alpha1.EnforcementWarn,
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create: %v", err)
		}
		got, err := client.Get(e.ctx, "alpha", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if !got.Spec.RequireImmutable || got.Spec.Enforcement != v1alpha1.EnforcementWarn {
			t.Errorf("get spec = %+v, want requireImmutable and Warn", got.Spec)
		}
		list, err := client.List(e.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if names := namesOf(itemPtrs(list.Items)); !reflect.DeepEqual(names, []string{"alpha"}) {
			t.Errorf("list names = %v, want [alpha]", names)
		}
		// The server writes the status of a new policy, so the update retries
		// on a conflict with a fresh read, as clients of any kind with a
		// status controller do.
		for attempt := 0; ; attempt++ {
			got.Spec.RequireImmutable = false
			got.Spec.RequiredKeys = []string{"team"}
			_, err := client.Update(e.ctx, got, metav1.UpdateOptions{})
			if err == nil {
				break
			}
			if !apierrors.IsConflict(err) || attempt == 10 {
				t.Fatalf("update: %v", err)
			}
			if got, err = client.Get(e.ctx, "alpha", metav1.GetOptions{}); err != nil {
				t.Fatalf("get: %v", err)
			}
		}
		beta, err := e.cs.ConfigV1beta1().ConfigPolicies().Get(e.ctx, "alpha", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get v1beta1: %v", err)
		}
		if beta.Spec.RequireImmutable || !reflect.DeepEqual(beta.Spec.RequiredKeys, []string{"team"}) || beta.Spec.Enforcement != v1beta1.EnforcementWarn {
			t.Errorf("v1beta1 view after v1alpha1 update = %+v", beta.Spec)
		}
		if err := client.Delete(e.ctx, "alpha", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := client.Get(e.ctx, "alpha", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get after delete: err = %v, want NotFound", err)
		}
	})

	t.Run("invalid rule is refused", func(t *testing.T) {
		_, err := e.cs.ConfigV1beta1().ConfigPolicies().Create(e.ctx, &v1beta1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "broken"},
			Spec: v1beta1.ConfigPolicySpec{
				Selector: selector,
				Rules:    []v1beta1.ConfigPolicyRule{{Expression: "data.(", Message: "x"}},
			},
		}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("create with a bad CEL expression: err = %v, want 422 Invalid", err)
		}
		if _, err := e.cs.ConfigV1beta1().ConfigPolicies().Get(e.ctx, "broken", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("refused policy was stored: err = %v", err)
		}
	})
}

// TestAPIConfigRevisionCRUD writes ConfigRevisions through the server's own
// store, reads, watches and deletes them through both versions, and checks
// that users cannot create, update or patch them.
func TestAPIConfigRevisionCRUD(t *testing.T) {
	e := sharedEnv(t)
	const ns = "revisions"
	owner := e.mustCreate(t, ns, &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "owner"},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"a": "1"}, RevisionHistoryLimit: ptr.To[int32](100)},
	})
	// Bring the owner to revision 3, so that the revisions written below are
	// its history rather than revisions from its future.
	for _, v := range []string{"2", "3"} {
		owner.Spec.Data["a"] = v
		var err error
		if owner, err = e.cs.ConfigV1beta1().ConfigSets(ns).Update(e.ctx, owner, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update owner: %v", err)
		}
	}
	if owner.Status.CurrentRevision != 3 {
		t.Fatalf("owner currentRevision = %d, want 3", owner.Status.CurrentRevision)
	}
	beta := e.cs.ConfigV1beta1().ConfigRevisions(ns)
	alpha := e.cs.ConfigV1alpha1().ConfigRevisions(ns)
	manual := metav1.ListOptions{LabelSelector: manualLabel + "=true"}

	// The watch starts before the revisions are written, from the list's
	// resourceVersion, so that it sees exactly what this test writes.
	initial, err := beta.List(e.ctx, manual)
	if err != nil {
		t.Fatalf("initial list: %v", err)
	}
	if len(initial.Items) != 0 {
		t.Fatalf("initial list has %d manual revisions, want 0", len(initial.Items))
	}
	w, err := beta.Watch(e.ctx, metav1.ListOptions{LabelSelector: manual.LabelSelector, ResourceVersion: initial.ResourceVersion})
	if err != nil {
		t.Fatalf("watch v1beta1: %v", err)
	}
	defer w.Stop()
	wAlpha, err := alpha.Watch(e.ctx, metav1.ListOptions{LabelSelector: manual.LabelSelector, ResourceVersion: initial.ResourceVersion})
	if err != nil {
		t.Fatalf("watch v1alpha1: %v", err)
	}
	defer wAlpha.Stop()

	e.mustCreateRevision(t, ns, manualRevision("owner-manual-1", "owner", 1, owner, map[string]string{"a": "1"}, nil))
	e.mustCreateRevision(t, ns, manualRevision("owner-manual-2", "owner", 2, owner, map[string]string{"a": "2"}, map[string][]byte{"key": {0, 1, 2, 255}}))
	third := manualRevision("owner-manual-3", "owner", 3, owner, map[string]string{"a": "3"}, nil)
	third.RollbackOf = 1
	e.mustCreateRevision(t, ns, third)

	t.Run("watch sees the server's writes", func(t *testing.T) {
		for i, name := range []string{"owner-manual-1", "owner-manual-2", "owner-manual-3"} {
			ev := nextEvent(t, w)
			rev, ok := ev.Object.(*v1beta1.ConfigRevision)
			if ev.Type != watch.Added || !ok || rev.Name != name || rev.Revision != int64(i+1) {
				t.Fatalf("v1beta1 event %d = %s %s, want ADDED %s", i, ev.Type, describe(ev.Object), name)
			}
			ev = nextEvent(t, wAlpha)
			arev, ok := ev.Object.(*v1alpha1.ConfigRevision)
			if ev.Type != watch.Added || !ok || arev.Name != name || arev.Revision != int64(i+1) {
				t.Fatalf("v1alpha1 event %d = %s %s, want ADDED %s", i, ev.Type, describe(ev.Object), name)
			}
		}
	})

	t.Run("get v1beta1", func(t *testing.T) {
		rev, err := beta.Get(e.ctx, "owner-manual-2", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if rev.ConfigSetName != "owner" || rev.Revision != 2 || rev.Author != "apitest" || rev.ChangeCause != "revision 2" || rev.RollbackOf != 0 {
			t.Errorf("get = %s", describe(rev))
		}
		if !reflect.DeepEqual(rev.Data, map[string]string{"a": "2"}) || !bytes.Equal(rev.SecretData["key"], []byte{0, 1, 2, 255}) {
			t.Errorf("get entries: data %v secretData %v", rev.Data, rev.SecretData)
		}
		if len(rev.OwnerReferences) != 1 || rev.OwnerReferences[0].UID != owner.UID || rev.OwnerReferences[0].Controller == nil || !*rev.OwnerReferences[0].Controller {
			t.Errorf("owner references = %+v, want the ConfigSet as controller", rev.OwnerReferences)
		}
		if rev.Generation != 1 {
			t.Errorf("generation = %d, want 1", rev.Generation)
		}
		third, err := beta.Get(e.ctx, "owner-manual-3", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get third: %v", err)
		}
		if third.RollbackOf != 1 {
			t.Errorf("rollbackOf = %d, want 1", third.RollbackOf)
		}
	})

	t.Run("get v1alpha1", func(t *testing.T) {
		rev, err := alpha.Get(e.ctx, "owner-manual-2", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		want := []v1alpha1.ConfigEntry{
			{Key: "a", Value: "2"},
			{Key: "key", Value: base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255}), Secret: true},
		}
		if rev.ConfigSetName != "owner" || rev.Revision != 2 || !reflect.DeepEqual(rev.Entries, want) {
			t.Errorf("get = %s, want entries %+v", describe(rev), want)
		}
	})

	t.Run("list both versions", func(t *testing.T) {
		list, err := beta.List(e.ctx, manual)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if names := namesOf(itemPtrs(list.Items)); !reflect.DeepEqual(names, []string{"owner-manual-1", "owner-manual-2", "owner-manual-3"}) {
			t.Errorf("v1beta1 list = %v", names)
		}
		alist, err := alpha.List(e.ctx, manual)
		if err != nil {
			t.Fatalf("list v1alpha1: %v", err)
		}
		if names := namesOf(itemPtrs(alist.Items)); !reflect.DeepEqual(names, []string{"owner-manual-1", "owner-manual-2", "owner-manual-3"}) {
			t.Errorf("v1alpha1 list = %v", names)
		}
	})

	t.Run("users cannot write", func(t *testing.T) {
		for _, version := range []string{"v1beta1", "v1alpha1"} {
			body := []byte(`{"apiVersion":"config.capstan.dev/` + version + `","kind":"ConfigRevision","metadata":{"name":"forged"},"configSetName":"owner","revision":9}`)
			rc := e.cs.ConfigV1beta1().RESTClient()
			if version == "v1alpha1" {
				rc = e.cs.ConfigV1alpha1().RESTClient()
			}
			existing, err := beta.Get(e.ctx, "owner-manual-1", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			updateBody := []byte(`{"apiVersion":"config.capstan.dev/` + version + `","kind":"ConfigRevision","metadata":{"name":"owner-manual-1","resourceVersion":"` +
				existing.ResourceVersion + `"},"configSetName":"owner","revision":7}`)
			// Create is not served (405); an update or patch may only send a
			// revision back unchanged, so one that changes it is refused (422,
			// or 409 for an apply that conflicts with the server's fields).
			requests := []struct {
				verb   string
				want   []int
				result func() (int, error)
			}{
				{"create", []int{http.StatusMethodNotAllowed}, func() (int, error) {
					var code int
					err := rc.Post().Namespace(ns).Resource("configrevisions").SetHeader("Content-Type", "application/json").Body(body).Do(e.ctx).StatusCode(&code).Error()
					return code, err
				}},
				{"update", []int{http.StatusUnprocessableEntity}, func() (int, error) {
					var code int
					err := rc.Put().Namespace(ns).Resource("configrevisions").Name("owner-manual-1").SetHeader("Content-Type", "application/json").Body(updateBody).Do(e.ctx).StatusCode(&code).Error()
					return code, err
				}},
				{"merge patch", []int{http.StatusUnprocessableEntity}, func() (int, error) {
					var code int
					err := rc.Patch(types.MergePatchType).Namespace(ns).Resource("configrevisions").Name("owner-manual-1").Body([]byte(`{"revision":7}`)).Do(e.ctx).StatusCode(&code).Error()
					return code, err
				}},
				{"apply patch", []int{http.StatusConflict, http.StatusUnprocessableEntity}, func() (int, error) {
					var code int
					err := rc.Patch(types.ApplyPatchType).Namespace(ns).Resource("configrevisions").Name("owner-manual-1").
						Param("fieldManager", "mallory").Body(updateBody).Do(e.ctx).StatusCode(&code).Error()
					return code, err
				}},
			}
			for _, req := range requests {
				code, err := req.result()
				if err == nil || !slices.Contains(req.want, code) {
					t.Errorf("%s %s of a configrevision: status %d, err %v; want one of %v", version, req.verb, code, err, req.want)
				}
			}
		}
		if _, err := beta.Get(e.ctx, "forged", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("refused create stored something: err = %v", err)
		}
		rev, err := beta.Get(e.ctx, "owner-manual-1", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if rev.Revision != 1 {
			t.Errorf("refused update or patch changed revision to %d", rev.Revision)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := beta.Delete(e.ctx, "owner-manual-1", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete v1beta1: %v", err)
		}
		if err := alpha.Delete(e.ctx, "owner-manual-2", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete v1alpha1: %v", err)
		}
		for _, name := range []string{"owner-manual-1", "owner-manual-2"} {
			ev := nextEvent(t, w)
			if ev.Type != watch.Deleted {
				t.Fatalf("event = %s %s, want DELETED %s", ev.Type, describe(ev.Object), name)
			}
			if rev := ev.Object.(*v1beta1.ConfigRevision); rev.Name != name {
				t.Fatalf("DELETED %s, want %s", rev.Name, name)
			}
		}
		for _, name := range []string{"owner-manual-1", "owner-manual-2"} {
			if _, err := alpha.Get(e.ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("get %s after delete: err = %v, want NotFound", name, err)
			}
		}
		if err := beta.DeleteCollection(e.ctx, metav1.DeleteOptions{}, manual); err != nil {
			t.Fatalf("deletecollection: %v", err)
		}
		ev := nextEvent(t, w)
		if rev, ok := ev.Object.(*v1beta1.ConfigRevision); ev.Type != watch.Deleted || !ok || rev.Name != "owner-manual-3" {
			t.Fatalf("event = %s %s, want DELETED owner-manual-3", ev.Type, describe(ev.Object))
		}
		list, err := beta.List(e.ctx, manual)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(list.Items) != 0 {
			t.Errorf("after deletecollection: %v", namesOf(itemPtrs(list.Items)))
		}
		if _, err := e.cs.ConfigV1beta1().ConfigSets(ns).Get(e.ctx, "owner", metav1.GetOptions{}); err != nil {
			t.Errorf("deleting revisions touched their ConfigSet: %v", err)
		}
	})
}
