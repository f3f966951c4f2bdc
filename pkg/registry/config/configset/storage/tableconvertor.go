package storage

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/table"
)

// tableConvertor renders the columns docs/design.md names: NAME, KEYS,
// REVISION, IMMUTABLE, AGE; -o wide adds the secret count and the history limit.
var tableConvertor = table.Convertor[*config.ConfigSet]{
	Columns: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: "Name of the ConfigSet."},
		{Name: "Keys", Type: "integer", Description: "Number of entries in data and secretData."},
		{Name: "Revision", Type: "integer", Description: "status.currentRevision: goes up by one whenever the entries change."},
		{Name: "Immutable", Type: "boolean", Description: "Whether the entries are frozen."},
		{Name: "Age", Type: "string", Description: "Time since creation."},
		{Name: "Secret Keys", Type: "integer", Priority: 1, Description: "Number of entries in secretData."},
		{Name: "History Limit", Type: "integer", Priority: 1, Description: "How many revisions are kept."},
	},
	Row: func(cs *config.ConfigSet, age string) []interface{} {
		return []interface{}{
			int64(len(cs.Spec.Data) + len(cs.Spec.SecretData)),
			cs.Status.CurrentRevision,
			cs.Spec.Immutable,
			age,
			int64(len(cs.Spec.SecretData)),
			int64(cs.Spec.RevisionHistoryLimit),
		}
	},
}
