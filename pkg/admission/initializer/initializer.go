// Package initializer hands Capstan's own informers to the admission plugins
// that want them.
package initializer

import (
	"k8s.io/apiserver/pkg/admission"

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
}

var _ admission.PluginInitializer = pluginInitializer{}

// New returns an initializer that gives plugins the config.capstan.dev informer factory.
func New(f informers.SharedInformerFactory) admission.PluginInitializer {
	return pluginInitializer{informers: f}
}

// Initialize passes the informer factory to plugins that want it.
func (i pluginInitializer) Initialize(plugin admission.Interface) {
	if wants, ok := plugin.(WantsConfigInformerFactory); ok {
		wants.SetConfigInformerFactory(i.informers)
	}
}
