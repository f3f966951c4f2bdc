package v1alpha1

import (
	"encoding/base64"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"

	"capstan.dev/capstan/pkg/apis/config"
)

func addFieldLabelConversionFuncs(scheme *runtime.Scheme) error {
	return config.AddFieldLabelConversionFuncs(scheme, SchemeGroupVersion)
}

// Convert_v1alpha1_ConfigSetSpec_To_config_ConfigSetSpec splits the entry list into plain and secret maps.
func Convert_v1alpha1_ConfigSetSpec_To_config_ConfigSetSpec(in *ConfigSetSpec, out *config.ConfigSetSpec, s conversion.Scope) error {
	if err := autoConvert_v1alpha1_ConfigSetSpec_To_config_ConfigSetSpec(in, out, s); err != nil {
		return err
	}
	var err error
	out.Data, out.SecretData, err = entriesToMaps(in.Entries)
	return err
}

// Convert_config_ConfigSetSpec_To_v1alpha1_ConfigSetSpec joins the plain and secret maps into one entry list.
func Convert_config_ConfigSetSpec_To_v1alpha1_ConfigSetSpec(in *config.ConfigSetSpec, out *ConfigSetSpec, s conversion.Scope) error {
	if err := autoConvert_config_ConfigSetSpec_To_v1alpha1_ConfigSetSpec(in, out, s); err != nil {
		return err
	}
	out.Entries = mapsToEntries(in.Data, in.SecretData)
	return nil
}

// Convert_v1alpha1_ConfigRevision_To_config_ConfigRevision splits the entry list into plain and secret maps.
func Convert_v1alpha1_ConfigRevision_To_config_ConfigRevision(in *ConfigRevision, out *config.ConfigRevision, s conversion.Scope) error {
	if err := autoConvert_v1alpha1_ConfigRevision_To_config_ConfigRevision(in, out, s); err != nil {
		return err
	}
	var err error
	out.Data, out.SecretData, err = entriesToMaps(in.Entries)
	return err
}

// Convert_config_ConfigRevision_To_v1alpha1_ConfigRevision joins the plain and secret maps into one entry list.
func Convert_config_ConfigRevision_To_v1alpha1_ConfigRevision(in *config.ConfigRevision, out *ConfigRevision, s conversion.Scope) error {
	if err := autoConvert_config_ConfigRevision_To_v1alpha1_ConfigRevision(in, out, s); err != nil {
		return err
	}
	out.Entries = mapsToEntries(in.Data, in.SecretData)
	return nil
}

// entriesToMaps refuses a key listed twice with the same sensitivity, which no
// map could hold. A key listed once plain and once secret is passed on, so that
// validation reports it with the same message as in every other version.
func entriesToMaps(entries []ConfigEntry) (map[string]string, map[string][]byte, error) {
	var data map[string]string
	var secretData map[string][]byte
	for i, e := range entries {
		if !e.Secret {
			if _, dup := data[e.Key]; dup {
				return nil, nil, fmt.Errorf("spec.entries[%d]: duplicate key %q", i, e.Key)
			}
			if data == nil {
				data = map[string]string{}
			}
			data[e.Key] = e.Value
			continue
		}
		if _, dup := secretData[e.Key]; dup {
			return nil, nil, fmt.Errorf("spec.entries[%d]: duplicate key %q", i, e.Key)
		}
		value, err := base64.StdEncoding.DecodeString(e.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("spec.entries[%d].value: a secret entry's value must be base64: %w", i, err)
		}
		if secretData == nil {
			secretData = map[string][]byte{}
		}
		secretData[e.Key] = value
	}
	return data, secretData, nil
}

// mapsToEntries sorts by key, plain before secret, so that the same object
// always reads back the same way.
func mapsToEntries(data map[string]string, secretData map[string][]byte) []ConfigEntry {
	if len(data)+len(secretData) == 0 {
		return nil
	}
	entries := make([]ConfigEntry, 0, len(data)+len(secretData))
	for k, v := range data {
		entries = append(entries, ConfigEntry{Key: k, Value: v})
	}
	for k, v := range secretData {
		entries = append(entries, ConfigEntry{Key: k, Value: base64.StdEncoding.EncodeToString(v), Secret: true})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Key != entries[j].Key {
			return entries[i].Key < entries[j].Key
		}
		return !entries[i].Secret && entries[j].Secret
	})
	return entries
}
