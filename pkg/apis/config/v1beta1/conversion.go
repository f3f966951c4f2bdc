package v1beta1

import (
	"k8s.io/apimachinery/pkg/runtime"

	"capstan.dev/capstan/pkg/apis/config"
)

func addFieldLabelConversionFuncs(scheme *runtime.Scheme) error {
	return config.AddFieldLabelConversionFuncs(scheme, SchemeGroupVersion)
}
