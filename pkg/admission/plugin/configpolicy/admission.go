// Package configpolicy is the ConfigPolicy admission plugin: it checks every
// ConfigSet create and update (patch, apply and rollback included) against the
// ConfigPolicies that select it, and denies or warns.
package configpolicy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apiserver/pkg/admission"
	genericadmissioninit "k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/apiserver/pkg/warning"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
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
	kubeClient kubernetes.Interface
	synced     []cache.InformerSynced
	evaluator  *Evaluator
}

var (
	_ admission.ValidationInterface                         = &Plugin{}
	_ capstaninit.WantsConfigInformerFactory                = &Plugin{}
	_ genericadmissioninit.WantsExternalKubeInformerFactory = &Plugin{}
	_ genericadmissioninit.WantsExternalKubeClientSet       = &Plugin{}
)

// New returns the plugin; it needs the config informer factory before use.
func New() *Plugin {
	registerMetrics()
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

// SetExternalKubeClientSet gives the plugin a client of the cluster's core
// API, to read a namespace that the informer has not delivered yet.
func (p *Plugin) SetExternalKubeClientSet(c kubernetes.Interface) {
	p.kubeClient = c
}

// ValidateInitialization fails when the plugin has no policy cache, or has
// only one of the namespace informer and the core API client: the informer
// alone would let a namespace created with its ConfigSets escape the
// namespaceSelectors.
func (p *Plugin) ValidateInitialization() error {
	if p.policies == nil {
		return fmt.Errorf("%s admission plugin needs a ConfigPolicy informer", PluginName)
	}
	if (p.namespaces == nil) != (p.kubeClient == nil) {
		return fmt.Errorf("%s admission plugin needs both the Namespace informer and a core API client, or neither", PluginName)
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
// the broken rules; a Warn violation adds a warning. When the labels of the
// ConfigSet's namespace are needed and cannot be read, it fails the request.
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

	namespaceLabels := p.namespaceLabelsOnce(ctx, cs.Namespace)
	var denied []string
	for _, policy := range policies {
		selected, err := p.selects(policy, cs, namespaceLabels)
		if err != nil {
			return namespaceError(cs.Namespace, err)
		}
		if !selected {
			continue
		}
		violations := p.evaluator.Evaluate(ctx, &policy.Spec, cs)
		record := func(result string) {
			if !a.IsDryRun() {
				decisions.WithLabelValues(policy.Name, string(policy.Spec.Enforcement), result).Inc()
			}
		}
		if len(violations) == 0 {
			record("allowed")
			continue
		}
		msg := fmt.Sprintf("configpolicy %q: %s", policy.Name, strings.Join(violations, "; "))
		if policy.Spec.Enforcement == configv1beta1.EnforcementWarn {
			record("warned")
			warning.AddWarning(ctx, "", msg)
			continue
		}
		record("denied")
		denied = append(denied, msg)
	}
	if len(denied) > 0 {
		return admission.NewForbidden(a, fmt.Errorf("denied by %s", strings.Join(denied, "; ")))
	}
	return nil
}

// selects reports whether policy applies to cs by its labels and its
// namespace's labels. It reads the namespace's labels only for a policy that
// needs them, and fails when they cannot be read, so that a policy is never
// skipped for want of them.
func (p *Plugin) selects(policy *configv1beta1.ConfigPolicy, cs *config.ConfigSet, namespaceLabels func() (map[string]string, error)) (bool, error) {
	if !matches(policy.Spec.Selector, cs.Labels) {
		return false, nil
	}
	if policy.Spec.NamespaceSelector == nil {
		return true, nil
	}
	if p.namespaces == nil {
		// Local mode has no namespaces to read labels from.
		return false, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(policy.Spec.NamespaceSelector)
	if err != nil {
		// As in matches: a selector that does not parse matches nothing.
		return false, nil
	}
	if selector.Empty() {
		// kube-apiserver's namespace matcher does not look the namespace up
		// for a selector that matches every namespace, and neither do we.
		return true, nil
	}
	set, err := namespaceLabels()
	if err != nil {
		return false, err
	}
	return selector.Matches(labels.Set(set)), nil
}

// namespaceLabelsOnce returns a function that reads the labels of namespace
// name when first called and returns the same answer afterwards, so that a
// request costs at most one lookup however many policies need them.
func (p *Plugin) namespaceLabelsOnce(ctx context.Context, name string) func() (map[string]string, error) {
	var (
		read bool
		set  map[string]string
		err  error
	)
	return func() (map[string]string, error) {
		if !read {
			set, err = p.namespaceLabels(ctx, name)
			read = true
		}
		return set, err
	}
}

// namespaceLabels reads the labels of namespace name as kube-apiserver's
// webhook namespace matcher does: from the informer, and when the informer
// does not have the namespace, from kube-apiserver itself, because the
// informer lags behind it (a namespace and its ConfigSets applied together
// reach Capstan before the namespace reaches the cache).
func (p *Plugin) namespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	ns, err := p.namespaces.Get(name)
	if apierrors.IsNotFound(err) && name != "" {
		ns, err = p.kubeClient.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
}

// namespaceError is the answer to a request whose namespace labels could not
// be read, the one kube-apiserver's webhook namespace matcher gives: the 404
// of a namespace that does not exist, and a 500 for any other failure, so
// that the request is refused rather than admitted unchecked.
func namespaceError(name string, err error) error {
	var status apierrors.APIStatus
	if apierrors.IsNotFound(err) && errors.As(err, &status) {
		return &apierrors.StatusError{ErrStatus: status.Status()}
	}
	return apierrors.NewInternalError(fmt.Errorf("%s admission could not read the labels of namespace %q for a namespaceSelector: %w", PluginName, name, err))
}
