package config

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Field selector names. They are defined once here and used by the registry's
// SelectableFields and by the field-label conversion of every served version,
// so that a selector accepted by one is always understood by the other.
const (
	// ConfigSetImmutableField selects ConfigSets by spec.immutable.
	ConfigSetImmutableField = "spec.immutable"
	// ConfigRevisionConfigSetNameField selects ConfigRevisions by the ConfigSet they belong to.
	ConfigRevisionConfigSetNameField = "configSetName"
	// ConfigRevisionRevisionField selects ConfigRevisions by revision number.
	ConfigRevisionRevisionField = "revision"
	// ConfigPolicyEnforcementField selects ConfigPolicies by spec.enforcement.
	ConfigPolicyEnforcementField = "spec.enforcement"
)

// SelectableFields lists, by kind, the fields besides metadata.name and
// metadata.namespace that a field selector may name.
var SelectableFields = map[string][]string{
	"ConfigSet":      {ConfigSetImmutableField},
	"ConfigRevision": {ConfigRevisionConfigSetNameField, ConfigRevisionRevisionField},
	"ConfigPolicy":   {ConfigPolicyEnforcementField},
}

// AddFieldLabelConversionFuncs registers, for every kind of the given version,
// a field-label conversion that accepts exactly the kind's selectable fields.
// Fields have the same name in every version, so the conversion is the identity.
func AddFieldLabelConversionFuncs(scheme *runtime.Scheme, gv schema.GroupVersion) error {
	for kind, fields := range SelectableFields {
		allowed := map[string]bool{"metadata.name": true, "metadata.namespace": true}
		for _, f := range fields {
			allowed[f] = true
		}
		err := scheme.AddFieldLabelConversionFunc(gv.WithKind(kind), func(label, value string) (string, string, error) {
			if allowed[label] {
				return label, value, nil
			}
			return "", "", fmt.Errorf("field label not supported for %s: %s", kind, label)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
