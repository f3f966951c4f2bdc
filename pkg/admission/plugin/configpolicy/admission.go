// Package configpolicy is the ConfigPolicy admission plugin: it checks every
// ConfigSet create and update (patch, apply and rollback included) against the
// ConfigPolicies that select it, and denies or warns.
package configpolicy

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apiserver/pkg/admission"
	genericadmissioninit "k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/apiserver/pkg/warning"
	kubeinformers "k8s.io/client-go/informers"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	capstaninit "capstan.dev/capstan/pkg/admission/initializer"
	"capstan.dev/capstan/pkg/apis/config"
	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
	listers "capstan.dev/capstan/pkg/generated/listers/config/v1beta1"
)

// PluginName is the name of the plugin in --enable-admission-plugins.
const PluginName = "ConfigPolicy"

// Register registers the plugin.
func Register(plugins *admission.Plugins) {
	plugins.Register(PluginName, func(io.Reader) (admission.Interface, error) {
		return New(), nil
	})
}

// Plugin enforces ConfigPolicies on ConfigSets.
type Plugin struct {
	*admission.Handler
	policies   listers.ConfigPolicyLister
	namespaces corev1listers.NamespaceLister
	synced     []cache.InformerSynced
	evaluator  *Evaluator
}

var (
	_ admission.ValidationInterface                         = &Plugin{}
	_ capstaninit.WantsConfigInformerFactory                = &Plugin{}
	_ genericadmissioninit.WantsExternalKubeInformerFactory = &Plugin{}
)

// New returns the plugin; it needs the config informer factory before use.
func New() *Plugin {
	p := &Plugin{
		Handler:   admission.NewHandler(admission.Create, admission.Update),
		evaluator: NewEvaluator(),
	}
	p.SetReadyFunc(p.hasSynced)
	return p
}

// SetConfigInformerFactory gives the plugin its ConfigPolicy cache.
func (p *Plugin) SetConfigInformerFactory(f informers.SharedInformerFactory) {
	inf := f.Config().V1beta1().ConfigPolicies()
	p.policies = inf.Lister()
	p.synced = append(p.synced, inf.Informer().HasSynced)
}

// SetExternalKubeInformerFactory gives the plugin namespace labels, for
// namespaceSelector. Without it (local mode) such policies match nothing.
func (p *Plugin) SetExternalKubeInformerFactory(f kubeinformers.SharedInformerFactory) {
	inf := f.Core().V1().Namespaces()
	p.namespaces = inf.Lister()
	p.synced = append(p.synced, inf.Informer().HasSynced)
}

// ValidateInitialization fails when the plugin has no policy cache.
func (p *Plugin) ValidateInitialization() error {
	if p.policies == nil {
		return fmt.Errorf("%s admission plugin needs a ConfigPolicy informer", PluginName)
	}
	return nil
}

func (p *Plugin) hasSynced() bool {
	for _, s := range p.synced {
		if !s() {
			return false
		}
	}
	return len(p.synced) > 0
}

// Validate checks a ConfigSet create or update against every policy that
// selects it. A Deny violation fails the request with 403 naming the policy and
// the broken rules; a Warn violation adds a warning.
func (p *Plugin) Validate(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	if a.GetResource().GroupResource() != config.Resource("configsets") || a.GetSubresource() != "" {
		return nil
	}
	cs, ok := a.GetObject().(*config.ConfigSet)
	if !ok {
		return nil
	}
	if !p.WaitForReady() {
		return admission.NewForbidden(a, fmt.Errorf("%s admission is not ready yet: ConfigPolicies are still loading", PluginName))
	}
	policies, err := p.policies.List(labels.Everything())
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("listing ConfigPolicies: %w", err))
	}
	sort.Slice(policies, func(i, j int) bool { return policies[i].Name < policies[j].Name })

	var denied []string
	for _, policy := range policies {
		if !p.selects(policy, cs) {
			continue
		}
		violations := p.evaluator.Evaluate(ctx, &policy.Spec, cs)
		if len(violations) == 0 {
			continue
		}
		msg := fmt.Sprintf("configpolicy %q: %s", policy.Name, strings.Join(violations, "; "))
		if policy.Spec.Enforcement == configv1beta1.EnforcementWarn {
			warning.AddWarning(ctx, "", msg)
			continue
		}
		denied = append(denied, msg)
	}
	if len(denied) > 0 {
		return admission.NewForbidden(a, fmt.Errorf("denied by %s", strings.Join(denied, "; ")))
	}
	return nil
}

// selects reports whether policy applies to cs by its labels and its namespace's labels.
func (p *Plugin) selects(policy *configv1beta1.ConfigPolicy, cs *config.ConfigSet) bool {
	if !matches(policy.Spec.Selector, cs.Labels) {
		return false
	}
	if policy.Spec.NamespaceSelector == nil {
		return true
	}
	if p.namespaces == nil {
		// Local mode has no namespaces to read labels from.
		return false
	}
	ns, err := p.namespaces.Get(cs.Namespace)
	if err != nil {
		return false
	}
	return matches(policy.Spec.NamespaceSelector, ns.Labels)
}
