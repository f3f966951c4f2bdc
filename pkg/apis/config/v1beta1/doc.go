// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=capstan.dev/capstan/pkg/apis/config
// +k8s:defaulter-gen=TypeMeta
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=dev.capstan.capstan.pkg.apis.config.v1beta1
// +groupName=config.capstan.dev

// Package v1beta1 is the preferred and storage version of the config.capstan.dev API.
package v1beta1
