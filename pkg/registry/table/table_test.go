package table

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
)

var columns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name."},
	{Name: "Keys", Type: "integer", Description: "Number of plain entries."},
	{Name: "Age", Type: "string", Description: "Time since creation."},
	{Name: "Immutable", Type: "boolean", Priority: 1, Description: "Frozen."},
}

// fake renders a ConfigSet with a RowFunc that records what it was given.
type fake struct {
	convertor Convertor[*config.ConfigSet]
	seen      []*config.ConfigSet
	ages      []string
}

func newFake() *fake {
	f := &fake{}
	f.convertor = Convertor[*config.ConfigSet]{
		Columns: columns,
		Row: func(cs *config.ConfigSet, age string) []interface{} {
			f.seen = append(f.seen, cs)
			f.ages = append(f.ages, age)
			return []interface{}{int64(len(cs.Spec.Data)), age, cs.Spec.Immutable}
		},
	}
	return f
}

func configSet(name string, created time.Time, keys int, immutable bool) *config.ConfigSet {
	cs := &config.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", ResourceVersion: "7", CreationTimestamp: metav1.NewTime(created)},
		Spec:       config.ConfigSetSpec{Immutable: immutable, Data: map[string]string{}},
	}
	for i := range keys {
		cs.Spec.Data[strings.Repeat("k", i+1)] = "v"
	}
	return cs
}

func TestConvertSingleObject(t *testing.T) {
	f := newFake()
	created := time.Now().Add(-3 * time.Hour)
	cs := configSet("one", created, 2, true)

	table, err := f.convertor.ConvertToTable(context.Background(), cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(table.ColumnDefinitions, columns) {
		t.Errorf("columns = %+v, want %+v", table.ColumnDefinitions, columns)
	}
	if table.ResourceVersion != "7" || table.Continue != "" || table.RemainingItemCount != nil {
		t.Errorf("list meta = %+v, want the object's resourceVersion only", table.ListMeta)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("%d rows, want 1", len(table.Rows))
	}
	row := table.Rows[0]
	wantAge := duration.HumanDuration(time.Since(created))
	want := []interface{}{"one", int64(2), wantAge, true}
	if !reflect.DeepEqual(row.Cells, want) {
		t.Errorf("cells = %#v, want %#v", row.Cells, want)
	}
	if row.Object.Object != cs {
		t.Errorf("row object = %#v, want the object itself", row.Object.Object)
	}
	if len(f.seen) != 1 || f.seen[0] != cs || f.ages[0] != wantAge {
		t.Errorf("RowFunc got %v with ages %v", f.seen, f.ages)
	}
}

func TestConvertUnknownAge(t *testing.T) {
	f := newFake()
	cs := configSet("new", time.Time{}, 0, false)
	table, err := f.convertor.ConvertToTable(context.Background(), cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []interface{}{"new", int64(0), "<unknown>", false}
	if !reflect.DeepEqual(table.Rows[0].Cells, want) {
		t.Errorf("cells = %#v, want %#v", table.Rows[0].Cells, want)
	}
}

func TestConvertList(t *testing.T) {
	f := newFake()
	created := time.Now().Add(-10 * 24 * time.Hour)
	list := &config.ConfigSetList{
		ListMeta: metav1.ListMeta{ResourceVersion: "11", Continue: "continuetoken", RemainingItemCount: ptr.To[int64](3)},
		Items: []config.ConfigSet{
			*configSet("a", created, 1, false),
			*configSet("b", created, 3, true),
		},
	}

	table, err := f.convertor.ConvertToTable(context.Background(), list, nil)
	if err != nil {
		t.Fatal(err)
	}
	if table.ResourceVersion != "11" || table.Continue != "continuetoken" {
		t.Errorf("the table lost the list's metadata: %+v", table.ListMeta)
	}
	if table.RemainingItemCount == nil || *table.RemainingItemCount != 3 {
		t.Errorf("remainingItemCount = %v, want 3", table.RemainingItemCount)
	}
	want := [][]interface{}{
		{"a", int64(1), "10d", false},
		{"b", int64(3), "10d", true},
	}
	if len(table.Rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(table.Rows), len(want))
	}
	for i, row := range table.Rows {
		if !reflect.DeepEqual(row.Cells, want[i]) {
			t.Errorf("row %d = %#v, want %#v", i, row.Cells, want[i])
		}
		if row.Object.Object != &list.Items[i] {
			t.Errorf("row %d carries %#v, want item %d", i, row.Object.Object, i)
		}
	}
}

func TestConvertEmptyList(t *testing.T) {
	f := newFake()
	list := &config.ConfigSetList{ListMeta: metav1.ListMeta{ResourceVersion: "5"}}
	table, err := f.convertor.ConvertToTable(context.Background(), list, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != 0 || table.ResourceVersion != "5" || len(table.ColumnDefinitions) != len(columns) {
		t.Errorf("table = %+v", table)
	}
	if len(f.seen) != 0 {
		t.Errorf("RowFunc was called for an empty list")
	}
}

func TestConvertWrongType(t *testing.T) {
	for name, obj := range map[string]runtime.Object{
		"object": &config.ConfigPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}},
		"list":   &config.ConfigPolicyList{Items: []config.ConfigPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "p"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake()
			_, err := f.convertor.ConvertToTable(context.Background(), obj, nil)
			if err == nil {
				t.Fatal("a ConfigPolicy was rendered in a ConfigSet table")
			}
			if !strings.Contains(err.Error(), "*config.ConfigPolicy") {
				t.Errorf("error %q does not name the type it cannot render", err)
			}
			if len(f.seen) != 0 {
				t.Errorf("RowFunc was called with %v", f.seen)
			}
		})
	}
}

func TestConvertNotAnObject(t *testing.T) {
	f := newFake()
	if _, err := f.convertor.ConvertToTable(context.Background(), &metav1.Status{}, nil); err == nil {
		t.Error("an object without metadata was rendered")
	}
}
