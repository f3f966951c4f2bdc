package configpolicy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/warning"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned/fake"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
)

// testNamespace is the namespace of every ConfigSet the tests admit.
const testNamespace = "team-a"

// recordedWarnings collects the warnings admission adds to a request.
type recordedWarnings struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recordedWarnings) AddWarning(_, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, text)
}

func (r *recordedWarnings) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// newConfigSet returns an internal ConfigSet in testNamespace.
func newConfigSet(name string, labels map[string]string, data map[string]string, secretData map[string][]byte) *config.ConfigSet {
	return &config.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace, Labels: labels},
		Spec:       config.ConfigSetSpec{Data: data, SecretData: secretData, RevisionHistoryLimit: 10},
	}
}

// attributes returns the admission attributes of a request on a config.capstan.dev resource.
func attributes(obj, old runtime.Object, resource, subresource string, op admission.Operation) admission.Attributes {
	gv := configv1beta1.SchemeGroupVersion
	kinds := map[string]string{"configsets": "ConfigSet", "configpolicies": "ConfigPolicy", "configrevisions": "ConfigRevision"}
	kind := kinds[resource]
	if subresource == "rollback" {
		kind = "ConfigSetRollback"
	}
	var name, namespace string
	if m, ok := obj.(metav1.Object); ok {
		name, namespace = m.GetName(), m.GetNamespace()
	}
	var options runtime.Object = &metav1.CreateOptions{}
	if op == admission.Update {
		options = &metav1.UpdateOptions{}
	}
	return admission.NewAttributesRecord(obj, old, gv.WithKind(kind), namespace, name,
		gv.WithResource(resource), subresource, op, options, false, &user.DefaultInfo{Name: "alice"})
}

// createAttributes returns the attributes of a ConfigSet create.
func createAttributes(cs *config.ConfigSet) admission.Attributes {
	return attributes(cs, nil, "configsets", "", admission.Create)
}

// newPolicy returns a v1beta1 ConfigPolicy with the given spec.
func newPolicy(name string, spec configv1beta1.ConfigPolicySpec) *configv1beta1.ConfigPolicy {
	if spec.Enforcement == "" {
		spec.Enforcement = configv1beta1.EnforcementDeny
	}
	return &configv1beta1.ConfigPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// startedPlugin returns a plugin whose informers run over a fake clientset
// holding policies and have synced.
func startedPlugin(t *testing.T, policies ...runtime.Object) (*Plugin, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(policies...)
	factory := informers.NewSharedInformerFactory(client, 0)
	p := New()
	p.SetConfigInformerFactory(factory)
	if err := p.ValidateInitialization(); err != nil {
		t.Fatalf("ValidateInitialization: %v", err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		factory.Shutdown()
	})
	factory.Start(stop)
	for typ, ok := range factory.WaitForCacheSync(stop) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}
	return p, client
}

// validate runs the plugin on attrs with a warning recorder.
func validate(p *Plugin, attrs admission.Attributes) ([]string, error) {
	rec := &recordedWarnings{}
	ctx := warning.WithWarningRecorder(context.Background(), rec)
	err := p.Validate(ctx, attrs, nil)
	return rec.list(), err
}

// forbiddenMessage is the message of a 403 the plugin returns for a ConfigSet create.
func forbiddenMessage(name, reason string) string {
	return fmt.Sprintf("configsets.config.capstan.dev %q is forbidden: %s", name, reason)
}

func TestValidationInitializationNeedsInformer(t *testing.T) {
	p := New()
	if err := p.ValidateInitialization(); err == nil || !strings.Contains(err.Error(), "needs a ConfigPolicy informer") {
		t.Errorf("ValidateInitialization without an informer factory = %v, want an error naming the missing informer", err)
	}
}

func TestHandlesCreateAndUpdateOnly(t *testing.T) {
	p := New()
	for op, want := range map[admission.Operation]bool{
		admission.Create:  true,
		admission.Update:  true,
		admission.Delete:  false,
		admission.Connect: false,
	} {
		if got := p.Handles(op); got != want {
			t.Errorf("Handles(%s) = %v, want %v", op, got, want)
		}
	}
}

// TestValidateRefusesUntilSynced builds the plugin over an informer factory
// that is never started: a ConfigSet create must be refused with a 403 that
// says the plugin is not ready, rather than admitted unchecked. The plugin
// waits for its cache (admission.Handler waits 10 s) before it refuses.
func TestValidateRefusesUntilSynced(t *testing.T) {
	client := fake.NewClientset(newPolicy("anything", configv1beta1.ConfigPolicySpec{}))
	factory := informers.NewSharedInformerFactory(client, 0)
	p := New()
	p.SetConfigInformerFactory(factory)
	if err := p.ValidateInitialization(); err != nil {
		t.Fatalf("ValidateInitialization: %v", err)
	}

	cs := newConfigSet("app", nil, map[string]string{"a": "1"}, nil)
	start := time.Now()
	_, err := validate(p, createAttributes(cs))
	if !apierrors.IsForbidden(err) {
		t.Fatalf("Validate before sync = %v, want 403 Forbidden", err)
	}
	want := forbiddenMessage("app", `ConfigPolicy admission is not ready yet: ConfigPolicies are still loading`)
	if err.Error() != want {
		t.Errorf("Validate before sync: message %q, want %q", err.Error(), want)
	}
	if !strings.Contains(err.Error(), "not ready") {
		t.Errorf("Validate before sync: message %q does not say the plugin is not ready", err.Error())
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))

	// Requests the plugin does not check are not held up by the missing cache.
	start = time.Now()
	status := cs.DeepCopy()
	if _, err := validate(p, attributes(status, cs, "configsets", "status", admission.Update)); err != nil {
		t.Errorf("status update before sync = %v, want nil", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("status update before sync waited %v for the cache", d)
	}
}

func TestValidateAfterSync(t *testing.T) {
	p, client := startedPlugin(t, newPolicy("owner-required", configv1beta1.ConfigPolicySpec{
		RequiredKeys: []string{"owner"},
	}))

	compliant := newConfigSet("good", nil, map[string]string{"owner": "team-a"}, nil)
	if warnings, err := validate(p, createAttributes(compliant)); err != nil || len(warnings) != 0 {
		t.Errorf("compliant create: err %v warnings %q, want nil and none", err, warnings)
	}

	violating := newConfigSet("bad", nil, map[string]string{"a": "1"}, nil)
	_, err := validate(p, createAttributes(violating))
	if !apierrors.IsForbidden(err) {
		t.Fatalf("violating create = %v, want 403", err)
	}
	if want := forbiddenMessage("bad", `denied by configpolicy "owner-required": requiredKeys: missing "owner"`); err.Error() != want {
		t.Errorf("violating create: message %q, want %q", err.Error(), want)
	}

	// An update is checked on the new object.
	old := compliant.DeepCopy()
	updated := compliant.DeepCopy()
	delete(updated.Spec.Data, "owner")
	_, err = validate(p, attributes(updated, old, "configsets", "", admission.Update))
	if want := forbiddenMessage("good", `denied by configpolicy "owner-required": requiredKeys: missing "owner"`); err == nil || err.Error() != want {
		t.Errorf("violating update = %v, want %q", err, want)
	}

	// A policy added later is seen once the informer delivers it.
	ctx := context.Background()
	if _, err := client.ConfigV1beta1().ConfigPolicies().Create(ctx, newPolicy("no-password", configv1beta1.ConfigPolicySpec{
		ForbiddenKeys: []string{"password"},
	}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a second policy: %v", err)
	}
	withPassword := newConfigSet("pw", nil, map[string]string{"owner": "x", "password": "hunter2"}, nil)
	waitFor(t, "the new policy to deny", func() bool {
		_, err := validate(p, createAttributes(withPassword))
		return err != nil
	})
	_, err = validate(p, createAttributes(withPassword))
	if want := forbiddenMessage("pw", `denied by configpolicy "no-password": forbiddenKeys: not allowed: "password"`); err == nil || err.Error() != want {
		t.Errorf("create with password = %v, want %q", err, want)
	}

	// Both policies broken: both named, in name order, one message.
	both := newConfigSet("both", nil, map[string]string{"password": "x"}, nil)
	_, err = validate(p, createAttributes(both))
	want := forbiddenMessage("both", `denied by configpolicy "no-password": forbiddenKeys: not allowed: "password"; `+
		`configpolicy "owner-required": requiredKeys: missing "owner"`)
	if err == nil || err.Error() != want {
		t.Errorf("create breaking both policies = %v, want %q", err, want)
	}

	// Deleting the policy lifts it.
	if err := client.ConfigV1beta1().ConfigPolicies().Delete(ctx, "no-password", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the policy: %v", err)
	}
	waitFor(t, "the deleted policy to stop denying", func() bool {
		_, err := validate(p, createAttributes(withPassword))
		return err == nil
	})
}

func TestValidateWarn(t *testing.T) {
	p, _ := startedPlugin(t,
		newPolicy("warn-owner", configv1beta1.ConfigPolicySpec{
			RequiredKeys: []string{"owner"},
			Enforcement:  configv1beta1.EnforcementWarn,
		}),
		newPolicy("warn-size", configv1beta1.ConfigPolicySpec{
			MaxKeys:     ptr.To[int32](1),
			Enforcement: configv1beta1.EnforcementWarn,
		}),
	)
	cs := newConfigSet("app", nil, map[string]string{"a": "1", "b": "2"}, nil)
	warnings, err := validate(p, createAttributes(cs))
	if err != nil {
		t.Fatalf("create under Warn policies = %v, want nil", err)
	}
	want := []string{
		`configpolicy "warn-owner": requiredKeys: missing "owner"`,
		`configpolicy "warn-size": maxKeys: 2 entries, at most 1 allowed`,
	}
	if !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings = %q, want %q", warnings, want)
	}

	compliant := newConfigSet("ok", nil, map[string]string{"owner": "x"}, nil)
	if warnings, err := validate(p, createAttributes(compliant)); err != nil || len(warnings) != 0 {
		t.Errorf("compliant create: err %v warnings %q, want nil and none", err, warnings)
	}
}

func TestValidateSelectors(t *testing.T) {
	p, _ := startedPlugin(t, newPolicy("production-owner", configv1beta1.ConfigPolicySpec{
		Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "production"}},
		RequiredKeys: []string{"owner"},
	}))

	prod := newConfigSet("prod", map[string]string{"tier": "production"}, map[string]string{"a": "1"}, nil)
	if _, err := validate(p, createAttributes(prod)); !apierrors.IsForbidden(err) {
		t.Errorf("create of a selected ConfigSet = %v, want 403", err)
	}
	for name, labels := range map[string]map[string]string{
		"no labels":   nil,
		"other tier":  {"tier": "staging"},
		"other label": {"env": "production"},
	} {
		cs := newConfigSet("other", labels, map[string]string{"a": "1"}, nil)
		if warnings, err := validate(p, createAttributes(cs)); err != nil || len(warnings) != 0 {
			t.Errorf("%s: create of an unselected ConfigSet: err %v warnings %q, want nil and none", name, err, warnings)
		}
	}
}

// TestValidateNamespaceSelector checks that a namespaceSelector matches
// nothing without namespace labels (local mode), and matches by the labels of
// the ConfigSet's namespace when the plugin has the cluster's namespaces.
// namespace_test.go covers a namespace the informer does not have.
func TestValidateNamespaceSelector(t *testing.T) {
	policy := newPolicy("prod-namespaces", configv1beta1.ConfigPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		RequiredKeys:      []string{"owner"},
	})
	everyNamespace := newPolicy("every-namespace", configv1beta1.ConfigPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{},
		ForbiddenKeys:     []string{"password"},
	})
	cs := newConfigSet("app", nil, map[string]string{"password": "x"}, nil)

	t.Run("local mode", func(t *testing.T) {
		p, _ := startedPlugin(t, policy, everyNamespace)
		if warnings, err := validate(p, createAttributes(cs)); err != nil || len(warnings) != 0 {
			t.Errorf("create without namespace labels: err %v warnings %q, want nil and none (namespaceSelector matches nothing)", err, warnings)
		}
	})

	t.Run("with namespaces", func(t *testing.T) {
		namespaces := []runtime.Object{
			namespace(testNamespace, map[string]string{"env": "prod"}),
			namespace("team-b", map[string]string{"env": "dev"}),
		}
		p, _ := namespacePlugin(t, []runtime.Object{policy, everyNamespace}, namespaces, kubefake.NewClientset(namespaces...))

		_, err := validate(p, createAttributes(cs))
		want := forbiddenMessage("app", `denied by configpolicy "every-namespace": forbiddenKeys: not allowed: "password"; `+
			`configpolicy "prod-namespaces": requiredKeys: missing "owner"`)
		if err == nil || err.Error() != want {
			t.Errorf("create in a prod namespace = %v, want %q", err, want)
		}
		other := cs.DeepCopy()
		other.Namespace = "team-b"
		_, err = validate(p, createAttributes(other))
		want = `configsets.config.capstan.dev "app" is forbidden: denied by configpolicy "every-namespace": forbiddenKeys: not allowed: "password"`
		if err == nil || err.Error() != want {
			t.Errorf("create in a dev namespace = %v, want %q", err, want)
		}
		// As kube-apiserver's webhook namespace matcher: a namespace that
		// neither the cache nor kube-apiserver has is a 404.
		missing := cs.DeepCopy()
		missing.Namespace = "unknown"
		if _, err := validate(p, createAttributes(missing)); !apierrors.IsNotFound(err) {
			t.Errorf("create in a namespace that does not exist = %v, want 404", err)
		}
	})
}

// TestValidateIgnores checks that the plugin leaves alone what it does not
// police: other resources, subresources, and objects that are not ConfigSets.
// It runs over a synced cache with a policy that denies every ConfigSet.
func TestValidateIgnores(t *testing.T) {
	p, _ := startedPlugin(t, newPolicy("deny-all", configv1beta1.ConfigPolicySpec{
		Rules: []configv1beta1.ConfigPolicyRule{{Expression: "false", Message: "nothing is allowed"}},
	}))
	cs := newConfigSet("app", nil, map[string]string{"a": "1"}, nil)
	if _, err := validate(p, createAttributes(cs)); !apierrors.IsForbidden(err) {
		t.Fatalf("the deny-all policy does not deny a ConfigSet create: %v", err)
	}

	policy := &config.ConfigPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	revision := &config.ConfigRevision{ObjectMeta: metav1.ObjectMeta{Name: "app-1", Namespace: testNamespace}, ConfigSetName: "app", Revision: 1}
	tests := []struct {
		name  string
		attrs admission.Attributes
	}{
		{"configpolicies create", attributes(policy, nil, "configpolicies", "", admission.Create)},
		{"configrevisions create", attributes(revision, nil, "configrevisions", "", admission.Create)},
		{"configsets/status update", attributes(cs, cs, "configsets", "status", admission.Update)},
		{"configsets/rollback create", attributes(&config.ConfigSetRollback{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: testNamespace}, Revision: 1}, nil, "configsets", "rollback", admission.Create)},
		{"configmaps in another group", admission.NewAttributesRecord(cs, nil, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, testNamespace, "app",
			schema.GroupVersionResource{Version: "v1", Resource: "configsets"}, "", admission.Create, &metav1.CreateOptions{}, false, &user.DefaultInfo{Name: "alice"})},
		{"not a ConfigSet object", attributes(policy, nil, "configsets", "", admission.Create)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if warnings, err := validate(p, tc.attrs); err != nil || len(warnings) != 0 {
				t.Errorf("Validate = %v, warnings %q; want nil and none", err, warnings)
			}
		})
	}
}

// bigData returns n plain entries with short keys.
func bigData(n int) map[string]string {
	data := make(map[string]string, n)
	for i := range n {
		data[fmt.Sprintf("k%06d", i)] = "v"
	}
	return data
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name       string
		spec       configv1beta1.ConfigPolicySpec
		cs         *config.ConfigSet
		want       []string
		wantPrefix []string // when the tail of a message comes from a library
	}{
		{
			name: "empty policy",
			cs:   newConfigSet("a", nil, map[string]string{"x": "1"}, nil),
		},
		{
			name: "requiredKeys met in data and secretData",
			spec: configv1beta1.ConfigPolicySpec{RequiredKeys: []string{"owner", "token"}},
			cs:   newConfigSet("a", nil, map[string]string{"owner": "x"}, map[string][]byte{"token": []byte("t")}),
		},
		{
			name: "requiredKeys missing",
			spec: configv1beta1.ConfigPolicySpec{RequiredKeys: []string{"owner", "team", "token"}},
			cs:   newConfigSet("a", nil, map[string]string{"team": "x"}, nil),
			want: []string{`requiredKeys: missing "owner", "token"`},
		},
		{
			name: "forbiddenKeys absent",
			spec: configv1beta1.ConfigPolicySpec{ForbiddenKeys: []string{"password"}},
			cs:   newConfigSet("a", nil, map[string]string{"pass": "x"}, nil),
		},
		{
			name: "forbiddenKeys present in data and secretData",
			spec: configv1beta1.ConfigPolicySpec{ForbiddenKeys: []string{"password", "other", "token"}},
			cs:   newConfigSet("a", nil, map[string]string{"password": "x"}, map[string][]byte{"token": []byte("t")}),
			want: []string{`forbiddenKeys: not allowed: "password", "token"`},
		},
		{
			name: "keyPattern met",
			spec: configv1beta1.ConfigPolicySpec{KeyPattern: "^[a-z_]+$"},
			cs:   newConfigSet("a", nil, map[string]string{"log_level": "x"}, map[string][]byte{"token": nil}),
		},
		{
			name: "keyPattern broken, keys sorted across data and secretData",
			spec: configv1beta1.ConfigPolicySpec{KeyPattern: "^[a-z_]+$"},
			cs:   newConfigSet("a", nil, map[string]string{"ok": "1", "Upper": "2", "dash-key": "3"}, map[string][]byte{"secret.key": nil}),
			want: []string{`keyPattern: keys must match "^[a-z_]+$": "Upper", "dash-key", "secret.key"`},
		},
		{
			name: "keyPattern lists at most five keys",
			spec: configv1beta1.ConfigPolicySpec{KeyPattern: "^x"},
			cs:   newConfigSet("a", nil, map[string]string{"a1": "", "a2": "", "a3": "", "a4": "", "a5": "", "a6": "", "a7": "", "x": ""}, nil),
			want: []string{`keyPattern: keys must match "^x": "a1", "a2", "a3", "a4", "a5" and 2 more`},
		},
		{
			name:       "keyPattern that does not compile",
			spec:       configv1beta1.ConfigPolicySpec{KeyPattern: "("},
			cs:         newConfigSet("a", nil, map[string]string{"x": ""}, nil),
			wantPrefix: []string{"keyPattern: error parsing regexp"},
		},
		{
			name: "maxKeys met",
			spec: configv1beta1.ConfigPolicySpec{MaxKeys: ptr.To[int32](2)},
			cs:   newConfigSet("a", nil, map[string]string{"x": ""}, map[string][]byte{"y": nil}),
		},
		{
			name: "maxKeys counts data and secretData",
			spec: configv1beta1.ConfigPolicySpec{MaxKeys: ptr.To[int32](2)},
			cs:   newConfigSet("a", nil, map[string]string{"x": "", "z": ""}, map[string][]byte{"y": nil}),
			want: []string{"maxKeys: 3 entries, at most 2 allowed"},
		},
		{
			name: "maxKeys zero",
			spec: configv1beta1.ConfigPolicySpec{MaxKeys: ptr.To[int32](0)},
			cs:   newConfigSet("a", nil, map[string]string{"x": ""}, nil),
			want: []string{"maxKeys: 1 entries, at most 0 allowed"},
		},
		{
			name: "maxBytes met exactly",
			spec: configv1beta1.ConfigPolicySpec{MaxBytes: ptr.To[int64](8)},
			cs:   newConfigSet("a", nil, map[string]string{"ab": "cd"}, map[string][]byte{"ef": []byte("gh")}),
		},
		{
			name: "maxBytes counts keys and values of both maps",
			spec: configv1beta1.ConfigPolicySpec{MaxBytes: ptr.To[int64](7)},
			cs:   newConfigSet("a", nil, map[string]string{"ab": "cd"}, map[string][]byte{"ef": []byte("gh")}),
			want: []string{"maxBytes: entries take 8 bytes, at most 7 allowed"},
		},
		{
			name: "requireImmutable met",
			spec: configv1beta1.ConfigPolicySpec{RequireImmutable: true},
			cs: func() *config.ConfigSet {
				cs := newConfigSet("a", nil, nil, nil)
				cs.Spec.Immutable = true
				return cs
			}(),
		},
		{
			name: "requireImmutable broken",
			spec: configv1beta1.ConfigPolicySpec{RequireImmutable: true},
			cs:   newConfigSet("a", nil, nil, nil),
			want: []string{"requireImmutable: spec.immutable must be true"},
		},
		{
			name: "data rule met",
			spec: configv1beta1.ConfigPolicySpec{Rules: []configv1beta1.ConfigPolicyRule{
				{Expression: "'env' in data && data.env in ['prod', 'dev']", Message: "env must be prod or dev"},
			}},
			cs: newConfigSet("a", nil, map[string]string{"env": "prod"}, nil),
		},
		{
			name: "data rules broken, with and without a message",
			spec: configv1beta1.ConfigPolicySpec{Rules: []configv1beta1.ConfigPolicyRule{
				{Expression: "'env' in data && data.env in ['prod', 'dev']", Message: "env must be prod or dev"},
				{Expression: "size(data) < 2"},
				{Expression: "true", Message: "never reported"},
			}},
			cs: newConfigSet("a", nil, map[string]string{"env": "staging", "x": "1"}, nil),
			want: []string{
				"rules[0]: env must be prod or dev",
				`rules[1]: "size(data) < 2" is false`,
			},
		},
		{
			name: "secretData rule met",
			spec: configv1beta1.ConfigPolicySpec{Rules: []configv1beta1.ConfigPolicyRule{
				{Expression: "secretData.all(k, size(secretData[k]) <= 4)", Message: "secrets at most 4 bytes"},
			}},
			cs: newConfigSet("a", nil, nil, map[string][]byte{"t": []byte("1234")}),
		},
		{
			name: "secretData rule broken",
			spec: configv1beta1.ConfigPolicySpec{Rules: []configv1beta1.ConfigPolicyRule{
				{Expression: "secretData.all(k, size(secretData[k]) <= 4)", Message: "secrets at most 4 bytes"},
			}},
			cs:   newConfigSet("a", nil, map[string]string{"big-but-plain": "123456"}, map[string][]byte{"t": []byte("12345")}),
			want: []string{"rules[0]: secrets at most 4 bytes"},
		},
		{
			name: "rule that fails to evaluate is broken",
			spec: configv1beta1.ConfigPolicySpec{Rules: []configv1beta1.ConfigPolicyRule{
				{Expression: "data.env == 'prod'", Message: "env must be prod"},
			}},
			cs:   newConfigSet("a", nil, map[string]string{"other": "x"}, nil),
			want: []string{"rules[0]: evaluation error (its details are not shown, as they can quote entry values), so the rule is treated as broken: env must be prod"},
		},
		{
			name: "rule without a message that fails to evaluate is named by its expression",
			spec: configv1beta1.ConfigPolicySpec{Rules: []configv1beta1.ConfigPolicyRule{
				{Expression: "data.env == 'prod'"},
			}},
			cs:   newConfigSet("a", nil, map[string]string{"other": "x"}, nil),
			want: []string{`rules[0]: evaluation error (its details are not shown, as they can quote entry values), so the rule is treated as broken: "data.env == 'prod'"`},
		},
		{
			name: "rule that does not compile is broken",
			spec: configv1beta1.ConfigPolicySpec{Rules: []configv1beta1.ConfigPolicyRule{
				{Expression: "data.(", Message: "x"},
			}},
			cs:         newConfigSet("a", nil, nil, nil),
			wantPrefix: []string{"rules[0]: does not compile: compilation failed"},
		},
		{
			name: "every rule kind at once, in order",
			spec: configv1beta1.ConfigPolicySpec{
				RequiredKeys:     []string{"owner"},
				ForbiddenKeys:    []string{"password"},
				KeyPattern:       "^[a-z]+$",
				MaxKeys:          ptr.To[int32](0),
				MaxBytes:         ptr.To[int64](1),
				RequireImmutable: true,
				Rules:            []configv1beta1.ConfigPolicyRule{{Expression: "size(secretData) > 0", Message: "needs a secret"}},
			},
			cs: newConfigSet("a", nil, map[string]string{"password": "pw"}, nil),
			want: []string{
				`requiredKeys: missing "owner"`,
				`forbiddenKeys: not allowed: "password"`,
				"maxKeys: 1 entries, at most 0 allowed",
				"maxBytes: entries take 10 bytes, at most 1 allowed",
				"requireImmutable: spec.immutable must be true",
				"rules[0]: needs a secret",
			},
		},
	}
	e := NewEvaluator()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := e.Evaluate(context.Background(), &tc.spec, tc.cs)
			if tc.wantPrefix != nil {
				if len(got) != len(tc.wantPrefix) {
					t.Fatalf("Evaluate = %q, want %d messages starting with %q", got, len(tc.wantPrefix), tc.wantPrefix)
				}
				for i, prefix := range tc.wantPrefix {
					if !strings.HasPrefix(got[i], prefix) {
						t.Errorf("message %d = %q, want it to start with %q", i, got[i], prefix)
					}
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Evaluate = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestEvaluateCostLimit evaluates a rule that compiles (its estimate is under
// the budget) on a ConfigSet large enough that running it takes longer than a
// rule may: the rule counts as broken, and the message says so. The policyrule
// package's knobs are unexported, so the test relies on the real limits:
// cel-go's cost tracking makes data.all over 40,000 entries take well over
// policyrule.EvalTimeout.
func TestEvaluateCostLimit(t *testing.T) {
	spec := configv1beta1.ConfigPolicySpec{Rules: []configv1beta1.ConfigPolicyRule{
		{Expression: "data.all(k, size(k) > 0)", Message: "keys must not be empty"},
	}}
	e := NewEvaluator()
	if got := e.Evaluate(context.Background(), &spec, newConfigSet("small", nil, bigData(100), nil)); len(got) != 0 {
		t.Fatalf("Evaluate on 100 entries = %q, want no violation", got)
	}
	start := time.Now()
	got := e.Evaluate(context.Background(), &spec, newConfigSet("big", nil, bigData(40000), nil))
	want := []string{"rules[0]: evaluation exceeded its limits (CEL rule exceeded its runtime cost limit: it ran for more than 1s), so the rule is treated as broken"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Evaluate on 40000 entries = %q, want %q", got, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Evaluate on 40000 entries took %v; the rule's timeout did not bound it", d)
	}
}

// waitFor waits up to 10 s for cond, failing the test when it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
