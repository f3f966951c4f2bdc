// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=capstan.dev/capstan/pkg/apis/config
// +k8s:defaulter-gen=TypeMeta
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=dev.capstan.capstan.pkg.apis.config.v1alpha1
// +groupName=config.capstan.dev

// Package v1alpha1 is the earlier shape of the config.capstan.dev API, still served.
// It lists entries instead of keeping two maps; conversion to and from the hub is
// lossless both ways.
package v1alpha1
