package configpolicy

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kubeinformers "k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	corev1listers "k8s.io/client-go/listers/core/v1"
	clienttesting "k8s.io/client-go/testing"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned/fake"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
)

// namespacePlugin returns a synced plugin in aggregated mode whose Namespace
// informer holds cached and whose core API client is live: a namespace in
// live and not in cached is one the informer has not delivered yet. It
// returns a counter of the namespace GETs sent to live.
func namespacePlugin(t *testing.T, policies []runtime.Object, cached []runtime.Object, live *kubefake.Clientset) (*Plugin, *atomic.Int32) {
	t.Helper()
	gets := &atomic.Int32{}
	live.PrependReactor("get", "namespaces", func(clienttesting.Action) (bool, runtime.Object, error) {
		gets.Add(1)
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(fake.NewClientset(policies...), 0)
	kubeFactory := kubeinformers.NewSharedInformerFactory(kubefake.NewClientset(cached...), 0)
	p := New()
	p.SetConfigInformerFactory(factory)
	p.SetExternalKubeInformerFactory(kubeFactory)
	p.SetExternalKubeClientSet(live)
	if err := p.ValidateInitialization(); err != nil {
		t.Fatalf("ValidateInitialization: %v", err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		factory.Shutdown()
		kubeFactory.Shutdown()
	})
	factory.Start(stop)
	kubeFactory.Start(stop)
	for typ, ok := range factory.WaitForCacheSync(stop) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}
	for typ, ok := range kubeFactory.WaitForCacheSync(stop) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}
	return p, gets
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// prodOwnerPolicy requires an owner in namespaces labelled env=prod.
func prodOwnerPolicy() *configv1beta1.ConfigPolicy {
	return newPolicy("prod-owner", configv1beta1.ConfigPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		RequiredKeys:      []string{"owner"},
	})
}

// TestNamespaceNotYetCached is the race of a namespace and a violating
// ConfigSet applied together: kube-apiserver has the namespace, the informer
// does not yet. The plugin must ask kube-apiserver and apply the policy.
func TestNamespaceNotYetCached(t *testing.T) {
	cs := newConfigSet("app", nil, map[string]string{"a": "1"}, nil)

	t.Run("matching namespace", func(t *testing.T) {
		live := kubefake.NewClientset(namespace(testNamespace, map[string]string{"env": "prod"}))
		p, gets := namespacePlugin(t, []runtime.Object{prodOwnerPolicy()}, nil, live)
		_, err := validate(p, createAttributes(cs))
		want := forbiddenMessage("app", `denied by configpolicy "prod-owner": requiredKeys: missing "owner"`)
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Errorf("create in a prod namespace the informer does not have yet = %v, want 403 %q", err, want)
		}
		if n := gets.Load(); n != 1 {
			t.Errorf("the plugin sent %d namespace GETs, want 1", n)
		}
	})

	t.Run("matching namespace, Warn", func(t *testing.T) {
		policy := prodOwnerPolicy()
		policy.Spec.Enforcement = configv1beta1.EnforcementWarn
		live := kubefake.NewClientset(namespace(testNamespace, map[string]string{"env": "prod"}))
		p, _ := namespacePlugin(t, []runtime.Object{policy}, nil, live)
		warnings, err := validate(p, createAttributes(cs))
		if err != nil || len(warnings) != 1 || warnings[0] != `configpolicy "prod-owner": requiredKeys: missing "owner"` {
			t.Errorf("create in a prod namespace the informer does not have yet: err %v warnings %q, want nil and the policy's warning", err, warnings)
		}
	})

	t.Run("namespace that does not match", func(t *testing.T) {
		live := kubefake.NewClientset(namespace(testNamespace, map[string]string{"env": "dev"}))
		p, _ := namespacePlugin(t, []runtime.Object{prodOwnerPolicy()}, nil, live)
		if warnings, err := validate(p, createAttributes(cs)); err != nil || len(warnings) != 0 {
			t.Errorf("create in a dev namespace the informer does not have yet: err %v warnings %q, want nil and none", err, warnings)
		}
	})

	t.Run("cached namespace is not read again", func(t *testing.T) {
		ns := namespace(testNamespace, map[string]string{"env": "prod"})
		p, gets := namespacePlugin(t, []runtime.Object{prodOwnerPolicy()}, []runtime.Object{ns}, kubefake.NewClientset(ns))
		if _, err := validate(p, createAttributes(cs)); !apierrors.IsForbidden(err) {
			t.Errorf("create in a cached prod namespace = %v, want 403", err)
		}
		if n := gets.Load(); n != 0 {
			t.Errorf("the plugin sent %d namespace GETs for a cached namespace, want 0", n)
		}
	})

	t.Run("one GET for several policies", func(t *testing.T) {
		second := newPolicy("prod-no-password", configv1beta1.ConfigPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
			ForbiddenKeys:     []string{"a"},
		})
		live := kubefake.NewClientset(namespace(testNamespace, map[string]string{"env": "prod"}))
		p, gets := namespacePlugin(t, []runtime.Object{prodOwnerPolicy(), second}, nil, live)
		_, err := validate(p, createAttributes(cs))
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "prod-owner") || !strings.Contains(err.Error(), "prod-no-password") {
			t.Errorf("create breaking two namespaceSelector policies = %v, want 403 naming both", err)
		}
		if n := gets.Load(); n != 1 {
			t.Errorf("the plugin sent %d namespace GETs, want 1", n)
		}
	})
}

// TestNamespaceLookupFailsClosed checks that a request whose namespace labels
// cannot be read is refused, never admitted with the policy skipped.
func TestNamespaceLookupFailsClosed(t *testing.T) {
	cs := newConfigSet("app", nil, map[string]string{"a": "1"}, nil)

	for name, reactorErr := range map[string]error{
		"connection error": errors.New("dial tcp 10.0.0.1:443: connect: connection refused"),
		"API error":        apierrors.NewForbidden(corev1.Resource("namespaces"), testNamespace, errors.New("RBAC says no")),
	} {
		t.Run(name, func(t *testing.T) {
			live := kubefake.NewClientset(namespace(testNamespace, map[string]string{"env": "prod"}))
			live.PrependReactor("get", "namespaces", func(clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, reactorErr
			})
			p, _ := namespacePlugin(t, []runtime.Object{prodOwnerPolicy()}, nil, live)
			_, err := validate(p, createAttributes(cs))
			if !apierrors.IsInternalError(err) {
				t.Fatalf("create when the namespace cannot be read = %v, want 500", err)
			}
			for _, want := range []string{"ConfigPolicy admission", `namespace "team-a"`, reactorErr.Error()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err.Error(), want)
				}
			}
		})
	}

	t.Run("informer error", func(t *testing.T) {
		p, gets := namespacePlugin(t, []runtime.Object{prodOwnerPolicy()}, nil, kubefake.NewClientset())
		p.namespaces = failingNamespaceLister{err: errors.New("index is broken")}
		_, err := validate(p, createAttributes(cs))
		if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "index is broken") {
			t.Errorf("create when the informer fails = %v, want 500 with the informer's error", err)
		}
		if n := gets.Load(); n != 0 {
			t.Errorf("the plugin sent %d namespace GETs after an informer error that is not NotFound, want 0", n)
		}
	})
}

// TestNamespaceAbsent checks what happens when neither the informer nor
// kube-apiserver has the namespace: as kube-apiserver's webhook namespace
// matcher, a 404 for a policy that needs the namespace's labels; no lookup,
// and no error, for the policies that do not.
func TestNamespaceAbsent(t *testing.T) {
	cs := newConfigSet("app", map[string]string{"tier": "web"}, map[string]string{"a": "1"}, nil)

	t.Run("policy needs the labels", func(t *testing.T) {
		p, _ := namespacePlugin(t, []runtime.Object{prodOwnerPolicy()}, nil, kubefake.NewClientset())
		_, err := validate(p, createAttributes(cs))
		if !apierrors.IsNotFound(err) {
			t.Fatalf("create in a namespace that does not exist = %v, want 404", err)
		}
		if want := `namespaces "team-a" not found`; err.Error() != want {
			t.Errorf("create in a namespace that does not exist: message %q, want %q", err.Error(), want)
		}
	})

	tests := []struct {
		name   string
		policy *configv1beta1.ConfigPolicy
		denied bool
	}{
		{
			name: "empty namespaceSelector matches every namespace",
			policy: newPolicy("every-namespace", configv1beta1.ConfigPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{},
				RequiredKeys:      []string{"owner"},
			}),
			denied: true,
		},
		{
			name: "ConfigSet not selected by its own labels",
			policy: newPolicy("other-tier", configv1beta1.ConfigPolicySpec{
				Selector:          &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
				RequiredKeys:      []string{"owner"},
			}),
		},
		{
			name: "no namespaceSelector",
			policy: newPolicy("no-namespace-selector", configv1beta1.ConfigPolicySpec{
				ForbiddenKeys: []string{"password"},
			}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, gets := namespacePlugin(t, []runtime.Object{tc.policy}, nil, kubefake.NewClientset())
			_, err := validate(p, createAttributes(cs))
			if tc.denied && !apierrors.IsForbidden(err) {
				t.Errorf("Validate = %v, want 403", err)
			}
			if !tc.denied && err != nil {
				t.Errorf("Validate = %v, want nil", err)
			}
			if n := gets.Load(); n != 0 {
				t.Errorf("the plugin sent %d namespace GETs, want 0", n)
			}
		})
	}
}

func TestValidateInitializationNeedsBothNamespaceSources(t *testing.T) {
	configFactory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	kube := kubefake.NewClientset()

	informerOnly := New()
	informerOnly.SetConfigInformerFactory(configFactory)
	informerOnly.SetExternalKubeInformerFactory(kubeinformers.NewSharedInformerFactory(kube, 0))
	if err := informerOnly.ValidateInitialization(); err == nil || !strings.Contains(err.Error(), "core API client") {
		t.Errorf("ValidateInitialization with the Namespace informer and no client = %v, want an error naming the client", err)
	}

	clientOnly := New()
	clientOnly.SetConfigInformerFactory(configFactory)
	clientOnly.SetExternalKubeClientSet(kube)
	if err := clientOnly.ValidateInitialization(); err == nil {
		t.Error("ValidateInitialization with a client and no Namespace informer succeeded, want an error")
	}
}

// failingNamespaceLister is a Namespace informer cache that fails to answer.
type failingNamespaceLister struct {
	err error
}

var _ corev1listers.NamespaceLister = failingNamespaceLister{}

func (l failingNamespaceLister) List(labels.Selector) ([]*corev1.Namespace, error) { return nil, l.err }
func (l failingNamespaceLister) Get(string) (*corev1.Namespace, error)             { return nil, l.err }
