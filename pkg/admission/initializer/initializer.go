// Package initializer hands admission plugins what Capstan provides them:
// its own informers, and how its resources count against ResourceQuotas.
package initializer

import (
	"k8s.io/apiserver/pkg/admission"
	genericinitializer "k8s.io/apiserver/pkg/admission/initializer"
	quota "k8s.io/apiserver/pkg/quota/v1"

	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
)

// WantsConfigInformerFactory is implemented by plugins that read
// config.capstan.dev objects from a shared informer cache.
type WantsConfigInformerFactory interface {
	SetConfigInformerFactory(informers.SharedInformerFactory)
	admission.InitializationValidator
}

type pluginInitializer struct {
	informers informers.SharedInformerFactory
	quota     quota.Configuration
}

var _ admission.PluginInitializer = pluginInitializer{}

// New returns an initializer that gives plugins the config.capstan.dev
// informer factory and the quota configuration (k8s.io/apiserver's
// ResourceQuota plugin wants it, as it does from kube-apiserver).
func New(f informers.SharedInformerFactory, q quota.Configuration) admission.PluginInitializer {
	return pluginInitializer{informers: f, quota: q}
}

// Initialize passes the informer factory and the quota configuration to the
// plugins that want them.
func (i pluginInitializer) Initialize(plugin admission.Interface) {
	if wants, ok := plugin.(WantsConfigInformerFactory); ok {
		wants.SetConfigInformerFactory(i.informers)
	}
	if wants, ok := plugin.(genericinitializer.WantsQuotaConfiguration); ok {
		wants.SetQuotaConfiguration(i.quota)
	}
}
