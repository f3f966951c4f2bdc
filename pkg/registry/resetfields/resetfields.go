// Package resetfields builds the reset-field sets strategies report to
// server-side apply.
package resetfields

import "sigs.k8s.io/structured-merge-diff/v6/fieldpath"

// Versions are the served versions of config.capstan.dev. Reset fields are
// named per version because a field's path can differ between versions.
var Versions = []fieldpath.APIVersion{"config.capstan.dev/v1beta1", "config.capstan.dev/v1alpha1"}

// ForAllVersions returns the same paths for every served version.
func ForAllVersions(paths ...fieldpath.Path) map[fieldpath.APIVersion]*fieldpath.Set {
	out := make(map[fieldpath.APIVersion]*fieldpath.Set, len(Versions))
	for _, v := range Versions {
		out[v] = fieldpath.NewSet(paths...)
	}
	return out
}
