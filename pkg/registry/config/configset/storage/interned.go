package storage

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/intern"
)

// internMinSize is the smallest entry value worth sharing between versions.
const internMinSize = 1024

// entryValues is shared by every ConfigSet store of the process, so that the
// watch cache and the requests decoding the same value share one copy.
var entryValues = intern.New(internMinSize)

// internedEntries gives the ConfigSet store a storage codec whose decoded
// objects share the memory of their large entry values with earlier versions
// of the same values. The watch cache keeps every version of a ConfigSet for
// at least 75 seconds; without this, a user who changes one small key beside
// a 1 MiB value a hundred times in a minute holds a hundred copies of it in
// every replica's heap.
type internedEntries struct {
	generic.RESTOptionsGetter
}

func (g internedEntries) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	if err != nil || opts.StorageConfig == nil {
		return opts, err
	}
	cfg := *opts.StorageConfig
	cfg.Codec = internCodec{Codec: cfg.Codec}
	opts.StorageConfig = &cfg
	return opts, nil
}

// internCodec interns the entry values of the ConfigSets it decodes.
type internCodec struct {
	runtime.Codec
}

func (c internCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	obj, gvk, err := c.Codec.Decode(data, defaults, into)
	if err != nil {
		return obj, gvk, err
	}
	switch o := obj.(type) {
	case *config.ConfigSet:
		internSpec(&o.Spec)
	case *config.ConfigSetList:
		for i := range o.Items {
			internSpec(&o.Items[i].Spec)
		}
	}
	return obj, gvk, nil
}

func internSpec(spec *config.ConfigSetSpec) {
	for k, v := range spec.Data {
		spec.Data[k] = entryValues.String(v)
	}
	for k, v := range spec.SecretData {
		spec.SecretData[k] = entryValues.Bytes(v)
	}
}
