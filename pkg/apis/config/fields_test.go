package config_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/install"
	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// TestFieldLabelConversion pins the field-label conversion of every served
// version to config.SelectableFields: a field selector the registry accepts
// must be one that every version lets through unchanged, and nothing else.
func TestFieldLabelConversion(t *testing.T) {
	scheme := runtime.NewScheme()
	install.Install(scheme)

	for _, kind := range []string{"ConfigSet", "ConfigRevision", "ConfigPolicy"} {
		if len(config.SelectableFields[kind]) == 0 {
			t.Errorf("config.SelectableFields has no fields for %s", kind)
		}
	}

	for _, gv := range []schema.GroupVersion{v1alpha1.SchemeGroupVersion, v1beta1.SchemeGroupVersion} {
		for kind, fields := range config.SelectableFields {
			gvk := gv.WithKind(kind)
			t.Run(gvk.String(), func(t *testing.T) {
				if !scheme.Recognizes(gvk) {
					t.Fatalf("%v is not registered", gvk)
				}
				for _, label := range append([]string{"metadata.name", "metadata.namespace"}, fields...) {
					gotLabel, gotValue, err := scheme.ConvertFieldLabel(gvk, label, "some-value")
					if err != nil {
						t.Errorf("ConvertFieldLabel(%q): %v", label, err)
						continue
					}
					if gotLabel != label || gotValue != "some-value" {
						t.Errorf("ConvertFieldLabel(%q) = %q, %q; want it unchanged", label, gotLabel, gotValue)
					}
				}
				for _, label := range []string{"spec.unknown", "metadata.labels", "status.currentRevision", ""} {
					if _, _, err := scheme.ConvertFieldLabel(gvk, label, "x"); err == nil {
						t.Errorf("ConvertFieldLabel(%q) accepted a field that is not selectable", label)
					}
				}
			})
		}
	}
}
