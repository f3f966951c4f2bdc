package storage

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/table"
)

// tableConvertor renders NAME, CONFIGSET, REVISION, AUTHOR, CAUSE, AGE; -o wide
// adds what a rollback restored and the number of entries.
var tableConvertor = table.Convertor[*config.ConfigRevision]{
	Columns: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: "Name of the ConfigRevision."},
		{Name: "ConfigSet", Type: "string", Description: "The ConfigSet this revision belongs to."},
		{Name: "Revision", Type: "integer", Description: "The ConfigSet's revision number."},
		{Name: "Author", Type: "string", Description: "The user whose request made the change."},
		{Name: "Cause", Type: "string", Description: "The change-cause annotation at the time of the change."},
		{Name: "Age", Type: "string", Description: "Time since creation."},
		{Name: "Rollback Of", Type: "string", Priority: 1, Description: "The revision a rollback restored."},
		{Name: "Keys", Type: "integer", Priority: 1, Description: "Number of entries."},
	},
	Row: func(rev *config.ConfigRevision, age string) []interface{} {
		rollbackOf := "<none>"
		if rev.RollbackOf != 0 {
			rollbackOf = fmt.Sprint(rev.RollbackOf)
		}
		cause := rev.ChangeCause
		if cause == "" {
			cause = "<none>"
		}
		return []interface{}{
			rev.ConfigSetName,
			rev.Revision,
			rev.Author,
			cause,
			age,
			rollbackOf,
			int64(len(rev.Data) + len(rev.SecretData)),
		}
	},
}
