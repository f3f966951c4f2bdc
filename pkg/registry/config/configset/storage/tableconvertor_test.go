package storage

import (
	"context"
	"reflect"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
	configpolicystorage "capstan.dev/capstan/pkg/registry/config/configpolicy/storage"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	configrevisionstorage "capstan.dev/capstan/pkg/registry/config/configrevision/storage"
	"capstan.dev/capstan/pkg/registry/registrytest"
)

// tenDaysAgo renders as "10d" in the AGE column for as long as a test runs.
var tenDaysAgo = metav1.NewTime(time.Now().Add(-10 * 24 * time.Hour))

type column struct {
	name     string
	priority int32
}

type tableCase struct {
	convertor rest.TableConvertor
	columns   []column
	single    runtime.Object
	// singleCells are the cells of single's row.
	singleCells []interface{}
	// list holds objects whose rows are listCells, in order.
	list      runtime.Object
	listCells [][]interface{}
}

// TestTableConvertors checks, for every kind, the columns kubectl prints and
// the exact cells of known objects, through the store the server installs.
func TestTableConvertors(t *testing.T) {
	getter := registrytest.NewRESTOptionsGetter(t, false)
	revisions, err := configrevisionstorage.NewStore(registrytest.Scheme, getter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(revisions.DestroyFunc)
	configSets, err := NewStorage(registrytest.Scheme, getter, registrytest.NewHistory(t, revisions, history.Options{}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(configSets.ConfigSet.Store.DestroyFunc)
	policies, err := configpolicystorage.NewStorage(registrytest.Scheme, getter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(policies.ConfigPolicy.Store.DestroyFunc)

	cases := map[string]tableCase{
		"ConfigSet": {
			convertor: configSets.ConfigSet,
			columns: []column{
				{"Name", 0}, {"Keys", 0}, {"Revision", 0}, {"Immutable", 0}, {"Age", 0},
				{"Secret Keys", 1}, {"History Limit", 1},
			},
			single:      configSet("a", tenDaysAgo, 7, true, 5),
			singleCells: []interface{}{"a", int64(3), int64(7), true, "10d", int64(1), int64(5)},
			list: &config.ConfigSetList{Items: []config.ConfigSet{
				*configSet("a", tenDaysAgo, 7, true, 5),
				{
					ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"},
					Spec:       config.ConfigSetSpec{RevisionHistoryLimit: 10},
					Status:     config.ConfigSetStatus{CurrentRevision: 1},
				},
			}},
			listCells: [][]interface{}{
				{"a", int64(3), int64(7), true, "10d", int64(1), int64(5)},
				{"b", int64(0), int64(1), false, "<unknown>", int64(0), int64(10)},
			},
		},
		"ConfigSet status": {
			convertor: configSets.Status,
			columns: []column{
				{"Name", 0}, {"Keys", 0}, {"Revision", 0}, {"Immutable", 0}, {"Age", 0},
				{"Secret Keys", 1}, {"History Limit", 1},
			},
			single:      configSet("a", tenDaysAgo, 7, true, 5),
			singleCells: []interface{}{"a", int64(3), int64(7), true, "10d", int64(1), int64(5)},
			list:        &config.ConfigSetList{},
		},
		"ConfigRevision": {
			convertor: configrevisionstorage.NewREST(revisions),
			columns: []column{
				{"Name", 0}, {"ConfigSet", 0}, {"Revision", 0}, {"Author", 0}, {"Cause", 0}, {"Age", 0},
				{"Rollback Of", 1}, {"Keys", 1},
			},
			single:      revision("app-1", 1, "", 0),
			singleCells: []interface{}{"app-1", "app", int64(1), "alice", "<none>", "10d", "<none>", int64(2)},
			list: &config.ConfigRevisionList{Items: []config.ConfigRevision{
				*revision("app-1", 1, "", 0),
				*revision("app-2", 2, "raise the log level", 0),
				*revision("app-3", 3, "", 1),
			}},
			listCells: [][]interface{}{
				{"app-1", "app", int64(1), "alice", "<none>", "10d", "<none>", int64(2)},
				{"app-2", "app", int64(2), "alice", "raise the log level", "10d", "<none>", int64(2)},
				{"app-3", "app", int64(3), "alice", "<none>", "10d", "1", int64(2)},
			},
		},
		"ConfigPolicy": {
			convertor: policies.ConfigPolicy,
			columns: []column{
				{"Name", 0}, {"Enforcement", 0}, {"Rules", 0}, {"Age", 0},
				{"Selector", 1},
			},
			single:      policy("all", config.EnforcementDeny, 2, nil),
			singleCells: []interface{}{"all", "Deny", int64(2), "10d", "<all>"},
			list: &config.ConfigPolicyList{Items: []config.ConfigPolicy{
				*policy("all", config.EnforcementDeny, 2, nil),
				*policy("team-a", config.EnforcementWarn, 0, &metav1.LabelSelector{
					MatchLabels: map[string]string{"team": "a"},
					MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"stage", "prod"}},
					},
				}),
			}},
			listCells: [][]interface{}{
				{"all", "Deny", int64(2), "10d", "<all>"},
				{"team-a", "Warn", int64(0), "10d", "env in (prod,stage),team=a"},
			},
		},
		"ConfigPolicy status": {
			convertor: policies.Status,
			columns: []column{
				{"Name", 0}, {"Enforcement", 0}, {"Rules", 0}, {"Age", 0},
				{"Selector", 1},
			},
			single:      policy("all", config.EnforcementDeny, 2, nil),
			singleCells: []interface{}{"all", "Deny", int64(2), "10d", "<all>"},
			list:        &config.ConfigPolicyList{},
		},
	}

	ctx := context.Background()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			single, err := tc.convertor.ConvertToTable(ctx, tc.single, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkColumns(t, single, tc.columns)
			if single.ResourceVersion != "42" || single.Continue != "" {
				t.Errorf("single object table: resourceVersion = %q, continue = %q; want the object's and none",
					single.ResourceVersion, single.Continue)
			}
			checkRows(t, single, []runtime.Object{tc.single}, [][]interface{}{tc.singleCells})

			list := tc.list.DeepCopyObject()
			listMeta := list.(metav1.ListInterface)
			listMeta.SetResourceVersion("11")
			listMeta.SetContinue("continuetoken")
			listMeta.SetRemainingItemCount(ptr.To[int64](5))
			table, err := tc.convertor.ConvertToTable(ctx, list, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkColumns(t, table, tc.columns)
			if table.ResourceVersion != "11" || table.Continue != "continuetoken" {
				t.Errorf("the table lost the list's metadata: %+v", table.ListMeta)
			}
			if table.RemainingItemCount == nil || *table.RemainingItemCount != 5 {
				t.Errorf("remainingItemCount = %v, want 5", table.RemainingItemCount)
			}
			checkRows(t, table, items(t, list), tc.listCells)
		})
	}
}

func checkColumns(t *testing.T, table *metav1.Table, want []column) {
	t.Helper()
	var got []column
	for _, c := range table.ColumnDefinitions {
		got = append(got, column{c.Name, c.Priority})
		if c.Description == "" {
			t.Errorf("column %q has no description", c.Name)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("columns = %v, want %v", got, want)
	}
	if first := table.ColumnDefinitions[0]; first.Type != "string" || first.Format != "name" {
		t.Errorf("the first column is not the name column: %+v", first)
	}
}

func checkRows(t *testing.T, table *metav1.Table, objects []runtime.Object, want [][]interface{}) {
	t.Helper()
	if len(table.Rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(table.Rows), len(want))
	}
	for i, row := range table.Rows {
		if len(row.Cells) != len(table.ColumnDefinitions) {
			t.Errorf("row %d has %d cells for %d columns", i, len(row.Cells), len(table.ColumnDefinitions))
		}
		if !apiequality.Semantic.DeepEqual(row.Cells, want[i]) {
			t.Errorf("row %d = %#v, want %#v", i, row.Cells, want[i])
		}
		if !apiequality.Semantic.DeepEqual(row.Object.Object, objects[i]) {
			t.Errorf("row %d carries %#v, want the object it renders", i, row.Object.Object)
		}
	}
}

func items(t *testing.T, list runtime.Object) []runtime.Object {
	t.Helper()
	var out []runtime.Object
	switch l := list.(type) {
	case *config.ConfigSetList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *config.ConfigRevisionList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *config.ConfigPolicyList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	default:
		t.Fatalf("unexpected list %T", list)
	}
	return out
}

func configSet(name string, created metav1.Time, revision int64, immutable bool, limit int32) *config.ConfigSet {
	return &config.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", ResourceVersion: "42", CreationTimestamp: created},
		Spec: config.ConfigSetSpec{
			Data:                 map[string]string{"x": "1", "y": "2"},
			SecretData:           map[string][]byte{"s": []byte("secret")},
			Immutable:            immutable,
			RevisionHistoryLimit: limit,
		},
		Status: config.ConfigSetStatus{CurrentRevision: revision, ObservedGeneration: 1},
	}
}

func revision(name string, number int64, cause string, rollbackOf int64) *config.ConfigRevision {
	return &config.ConfigRevision{
		ObjectMeta:    metav1.ObjectMeta{Name: name, Namespace: "ns", ResourceVersion: "42", CreationTimestamp: tenDaysAgo},
		ConfigSetName: "app",
		Revision:      number,
		Data:          map[string]string{"x": "1"},
		SecretData:    map[string][]byte{"s": []byte("secret")},
		Author:        "alice",
		ChangeCause:   cause,
		RollbackOf:    rollbackOf,
	}
}

func policy(name string, enforcement config.EnforcementAction, rules int, selector *metav1.LabelSelector) *config.ConfigPolicy {
	p := &config.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "42", CreationTimestamp: tenDaysAgo},
		Spec:       config.ConfigPolicySpec{Selector: selector, Enforcement: enforcement},
	}
	for range rules {
		p.Spec.Rules = append(p.Spec.Rules, config.ConfigPolicyRule{Expression: "true"})
	}
	return p
}
