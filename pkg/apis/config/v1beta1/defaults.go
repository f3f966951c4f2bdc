package v1beta1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// defaultRevisionHistoryLimit mirrors config.DefaultRevisionHistoryLimit; the
// versioned package does not import the internal one for a constant.
const defaultRevisionHistoryLimit int32 = 10

func addDefaultingFuncs(scheme *runtime.Scheme) error {
	return RegisterDefaults(scheme)
}

// SetDefaults_ConfigSetSpec fills immutable and revisionHistoryLimit.
func SetDefaults_ConfigSetSpec(obj *ConfigSetSpec) {
	if obj.Immutable == nil {
		obj.Immutable = ptr.To(false)
	}
	if obj.RevisionHistoryLimit == nil {
		obj.RevisionHistoryLimit = ptr.To(defaultRevisionHistoryLimit)
	}
}

// SetDefaults_ConfigPolicySpec makes Deny the enforcement of a policy that does not say.
func SetDefaults_ConfigPolicySpec(obj *ConfigPolicySpec) {
	if obj.Enforcement == "" {
		obj.Enforcement = EnforcementDeny
	}
}
