package storage

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/table"
)

// tableConvertor renders NAME, ENFORCEMENT, RULES, AGE; -o wide adds the selector.
var tableConvertor = table.Convertor[*config.ConfigPolicy]{
	Columns: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: "Name of the ConfigPolicy."},
		{Name: "Enforcement", Type: "string", Description: "Deny or Warn."},
		{Name: "Rules", Type: "integer", Description: "Number of CEL rules."},
		{Name: "Age", Type: "string", Description: "Time since creation."},
		{Name: "Selector", Type: "string", Priority: 1, Description: "The ConfigSet label selector."},
	},
	Row: func(p *config.ConfigPolicy, age string) []interface{} {
		selector := "<all>"
		if p.Spec.Selector != nil {
			s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			switch {
			case err != nil:
				selector = "<invalid>"
			case !s.Empty():
				selector = s.String()
			}
		}
		return []interface{}{string(p.Spec.Enforcement), int64(len(p.Spec.Rules)), age, selector}
	},
}
