// Package table builds the server-side tables kubectl prints for Capstan's kinds.
package table

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metatable "k8s.io/apimachinery/pkg/api/meta/table"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"
)

// RowFunc returns the cells of one object after NAME; age is already formatted.
type RowFunc[T runtime.Object] func(obj T, age string) []interface{}

// Convertor renders objects of one kind as rows: NAME first, then the cells RowFunc returns.
type Convertor[T runtime.Object] struct {
	// Columns are the column definitions, NAME included.
	Columns []metav1.TableColumnDefinition
	// Row returns every cell but the name.
	Row RowFunc[T]
}

var _ rest.TableConvertor = Convertor[*metav1.PartialObjectMetadata]{}

// ConvertToTable renders a single object or a list, carrying the list's
// resourceVersion and continue token so that `kubectl get -w` and paging work.
func (c Convertor[T]) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: c.Columns}
	if m, err := meta.ListAccessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
		table.Continue = m.GetContinue()
		table.RemainingItemCount = m.GetRemainingItemCount()
	} else if m, err := meta.CommonAccessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
	}
	rows, err := metatable.MetaToTableRow(obj, func(obj runtime.Object, _ metav1.Object, name, age string) ([]interface{}, error) {
		typed, ok := obj.(T)
		if !ok {
			return nil, fmt.Errorf("cannot render %T in this table", obj)
		}
		return append([]interface{}{name}, c.Row(typed, age)...), nil
	})
	if err != nil {
		return nil, err
	}
	table.Rows = rows
	return table, nil
}
