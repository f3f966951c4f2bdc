package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// tableAccept asks for a server-side table, as kubectl get does.
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io"

// ageCell matches the AGE cell of an object created moments ago.
var ageCell = regexp.MustCompile(`^[0-9]+s$`)

// The TestTable tests check the tables `kubectl get` prints for every kind:
// the columns docs/design.md names, in order, and the cells of known objects.

// TestTableConfigSet: ConfigSet.
func TestTableConfigSet(t *testing.T) {
	ts := sharedServer(t)
	client, api, ctx := newClientset(t, ts), newRawAPI(t, ts), t.Context()
	const ns = "tables"

	limit := int32(7)
	_, err := client.ConfigV1beta1().ConfigSets(ns).Create(ctx, &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1beta1.ConfigSetSpec{
			Data:                 map[string]string{"A": "1", "B": "2"},
			SecretData:           map[string][]byte{"S": []byte("s")},
			RevisionHistoryLimit: &limit,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ConfigSet web: %v", err)
	}
	// One change of the entries, so that REVISION is 2.
	patch := []byte(`{"spec":{"data":{"A":"10"}}}`)
	if _, err := client.ConfigV1beta1().ConfigSets(ns).Patch(ctx, "web", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("patching ConfigSet web: %v", err)
	}
	immutable := true
	_, err = client.ConfigV1beta1().ConfigSets(ns).Create(ctx, &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "worker"},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"Q": "jobs"}, Immutable: &immutable},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ConfigSet worker: %v", err)
	}

	wantColumns := []string{"Name", "Keys", "Revision", "Immutable", "Age"}
	wantWide := map[string]string{"Secret Keys": "1", "History Limit": "7"}
	for _, version := range []string{"v1beta1", "v1alpha1"} {
		t.Run(version+" get", func(t *testing.T) {
			table := api.getTable(t, "/apis/config.capstan.dev/"+version+"/namespaces/"+ns+"/configsets/web")
			requireColumns(t, table, wantColumns, true)
			if len(table.Rows) != 1 {
				t.Fatalf("table has %d rows, want 1", len(table.Rows))
			}
			requireRow(t, table, 0, "web", "3", "2", "false")
			requireWideCells(t, table, 0, wantWide)
			requireRowObject(t, table, 0, "web")
		})
	}

	t.Run("list", func(t *testing.T) {
		table := api.getTable(t, "/apis/config.capstan.dev/v1beta1/namespaces/"+ns+"/configsets")
		requireColumns(t, table, wantColumns, true)
		if len(table.Rows) != 2 {
			t.Fatalf("table has %d rows, want 2 (web, worker)", len(table.Rows))
		}
		requireRow(t, table, 0, "web", "3", "2", "false")
		requireRow(t, table, 1, "worker", "1", "1", "true")
		requireWideCells(t, table, 1, map[string]string{"Secret Keys": "0", "History Limit": "10"})
		if table.ResourceVersion == "" {
			t.Errorf("list table has no resourceVersion; kubectl get -w needs it")
		}
	})

	t.Run("paged list carries the continue token", func(t *testing.T) {
		table := api.getTable(t, "/apis/config.capstan.dev/v1beta1/namespaces/"+ns+"/configsets?limit=1")
		if len(table.Rows) != 1 || table.Continue == "" {
			t.Fatalf("table with limit=1 has %d rows and continue %q, want 1 row and a token", len(table.Rows), table.Continue)
		}
		requireRow(t, table, 0, "web")
		next := api.getTable(t, "/apis/config.capstan.dev/v1beta1/namespaces/"+ns+"/configsets?limit=1&continue="+url.QueryEscape(table.Continue))
		if len(next.Rows) != 1 {
			t.Fatalf("second page has %d rows, want 1", len(next.Rows))
		}
		requireRow(t, next, 0, "worker")
	})
}

// TestTableConfigRevision: ConfigRevision.
func TestTableConfigRevision(t *testing.T) {
	ts := sharedServer(t)
	client, api, ctx := newClientset(t, ts), newRawAPI(t, ts), t.Context()
	const ns = "table-revisions"

	// The revisions belong to a real ConfigSet: the history reconciler
	// deletes revisions whose ConfigSet does not exist.
	owner, err := client.ConfigV1beta1().ConfigSets(ns).Create(ctx, &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "st-history"},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"A": "1"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ownedBy := []metav1.OwnerReference{{APIVersion: "config.capstan.dev/v1beta1", Kind: "ConfigSet", Name: owner.Name, UID: owner.UID}}
	manual := map[string]string{"st-table": "manual"}
	revisions := []*config.ConfigRevision{
		{
			ObjectMeta:    metav1.ObjectMeta{Name: "st-history-rev-a", Namespace: ns, Labels: manual, OwnerReferences: ownedBy},
			ConfigSetName: "st-history",
			Revision:      4,
			Data:          map[string]string{"A": "1", "B": "2"},
			SecretData:    map[string][]byte{"S": []byte("s")},
			Author:        "alice@example.com",
			ChangeCause:   "raise the pool size",
		},
		{
			ObjectMeta:    metav1.ObjectMeta{Name: "st-history-rev-b", Namespace: ns, Labels: manual, OwnerReferences: ownedBy},
			ConfigSetName: "st-history",
			Revision:      5,
			Author:        "bob",
			RollbackOf:    3,
		},
	}
	for _, rev := range revisions {
		_, err := ts.Server.Storage.ConfigRevisions.Create(genericapirequest.WithNamespace(ctx, ns), rev, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating ConfigRevision %s through the store: %v", rev.Name, err)
		}
	}

	wantColumns := []string{"Name", "ConfigSet", "Revision", "Author", "Cause", "Age"}
	t.Run("get", func(t *testing.T) {
		table := api.getTable(t, "/apis/config.capstan.dev/v1beta1/namespaces/"+ns+"/configrevisions/st-history-rev-a")
		requireColumns(t, table, wantColumns, false)
		if len(table.Rows) != 1 {
			t.Fatalf("table has %d rows, want 1", len(table.Rows))
		}
		requireRow(t, table, 0, "st-history-rev-a", "st-history", "4", "alice@example.com", "raise the pool size")
		requireWideCells(t, table, 0, map[string]string{"Rollback Of": "<none>", "Keys": "3"})
		requireRowObject(t, table, 0, "st-history-rev-a")
	})
	t.Run("list by configSetName", func(t *testing.T) {
		table := api.getTable(t, "/apis/config.capstan.dev/v1beta1/namespaces/"+ns+"/configrevisions?fieldSelector="+
			url.QueryEscape(config.ConfigRevisionConfigSetNameField+"=st-history")+"&labelSelector=st-table%3Dmanual")
		requireColumns(t, table, wantColumns, false)
		if len(table.Rows) != 2 {
			t.Fatalf("table has %d rows, want 2", len(table.Rows))
		}
		requireRow(t, table, 0, "st-history-rev-a", "st-history", "4", "alice@example.com", "raise the pool size")
		requireRow(t, table, 1, "st-history-rev-b", "st-history", "5", "bob", "<none>")
		requireWideCells(t, table, 1, map[string]string{"Rollback Of": "3", "Keys": "0"})
	})
}

// TestTableConfigPolicy: ConfigPolicy.
func TestTableConfigPolicy(t *testing.T) {
	// A server of its own: the test lists every ConfigPolicy and expects only its own.
	ts := capstantesting.StartTestServer(t)
	api := newRawAPI(t, ts)

	// Selectors that match no ConfigSet, so that the policies change nothing else.
	policies := []string{
		`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigPolicy","metadata":{"name":"guard-warn"},` +
			`"spec":{"selector":{"matchLabels":{"tier":"st-none"}},"enforcement":"Warn",` +
			`"rules":[{"expression":"size(data) < 100","message":"too many"},{"expression":"!('DEBUG' in data)","message":"no DEBUG"}]}}`,
		// No enforcement: it defaults to Deny.
		`{"apiVersion":"config.capstan.dev/v1beta1","kind":"ConfigPolicy","metadata":{"name":"guard-default"},` +
			`"spec":{"selector":{"matchLabels":{"tier":"st-none"}},"requiredKeys":["LOG_LEVEL"]}}`,
	}
	for _, body := range policies {
		api.do(t, http.MethodPost, policiesPath, "application/json", []byte(body)).requireCode(t, http.StatusCreated)
	}

	wantColumns := []string{"Name", "Enforcement", "Rules", "Age"}
	t.Run("get", func(t *testing.T) {
		table := api.getTable(t, policiesPath+"/guard-warn")
		requireColumns(t, table, wantColumns, false)
		if len(table.Rows) != 1 {
			t.Fatalf("table has %d rows, want 1", len(table.Rows))
		}
		requireRow(t, table, 0, "guard-warn", "Warn", "2")
		requireWideCells(t, table, 0, map[string]string{"Selector": "tier=st-none"})
		requireRowObject(t, table, 0, "guard-warn")
	})
	t.Run("list", func(t *testing.T) {
		table := api.getTable(t, policiesPath)
		requireColumns(t, table, wantColumns, false)
		if len(table.Rows) != 2 {
			t.Fatalf("table has %d rows, want 2", len(table.Rows))
		}
		requireRow(t, table, 0, "guard-default", "Deny", "0")
		requireRow(t, table, 1, "guard-warn", "Warn", "2")
	})
}

// getTable GETs path as a meta.k8s.io/v1 Table.
func (a rawAPI) getTable(t *testing.T, path string) *metav1.Table {
	t.Helper()
	resp := a.do(t, http.MethodGet, path, "", nil, "Accept", tableAccept)
	resp.requireCode(t, http.StatusOK)
	if ct := resp.header.Get("Content-Type"); ct != "application/json;as=Table;v=v1;g=meta.k8s.io" && ct != "application/json" {
		t.Errorf("GET %s as a table: Content-Type %q", path, ct)
	}
	var table metav1.Table
	if err := json.Unmarshal(resp.body, &table); err != nil {
		t.Fatalf("GET %s: decoding the table: %v; body: %s", path, err, head(resp.body))
	}
	if table.Kind != "Table" || table.APIVersion != "meta.k8s.io/v1" {
		t.Fatalf("GET %s: got %s %s, want a meta.k8s.io/v1 Table; body: %s", path, table.APIVersion, table.Kind, head(resp.body))
	}
	return &table
}

// requireColumns checks the priority-0 columns exactly and in order, and
// that every other column is a wide (priority 1) one after them. When
// wantWide is true there must be at least one wide column.
func requireColumns(t *testing.T, table *metav1.Table, want []string, wantWide bool) {
	t.Helper()
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	if len(names) < len(want) || !slices.Equal(names[:len(want)], want) {
		t.Fatalf("columns are %q, want %q first", names, want)
	}
	for i, c := range table.ColumnDefinitions {
		if i < len(want) && c.Priority != 0 {
			t.Errorf("column %q has priority %d, want 0: it is one of the default columns", c.Name, c.Priority)
		}
		if i >= len(want) && c.Priority != 1 {
			t.Errorf("column %q has priority %d, want 1: only the columns %q show without -o wide", c.Name, c.Priority, want)
		}
	}
	if table.ColumnDefinitions[0].Format != "name" {
		t.Errorf("the Name column has format %q, want \"name\"", table.ColumnDefinitions[0].Format)
	}
	if wantWide && len(names) == len(want) {
		t.Errorf("columns are %q: there are no wide-only columns", names)
	}
}

// requireRow checks the first cells of row i, then that the Age cell is
// an age, whatever column it is in.
func requireRow(t *testing.T, table *metav1.Table, i int, want ...string) {
	t.Helper()
	if i >= len(table.Rows) {
		t.Fatalf("table has %d rows, want row %d", len(table.Rows), i)
	}
	row := table.Rows[i]
	if len(row.Cells) != len(table.ColumnDefinitions) {
		t.Fatalf("row %d has %d cells for %d columns: %v", i, len(row.Cells), len(table.ColumnDefinitions), row.Cells)
	}
	var got []string
	for _, c := range row.Cells[:len(want)] {
		got = append(got, fmt.Sprint(c))
	}
	if !slices.Equal(got, want) {
		t.Errorf("row %d starts with %q, want %q", i, got, want)
	}
	for j, c := range table.ColumnDefinitions {
		if c.Name == "Age" && !ageCell.MatchString(fmt.Sprint(row.Cells[j])) {
			t.Errorf("row %d: Age is %q, want seconds since creation", i, row.Cells[j])
		}
	}
}

// requireWideCells checks, by column name, the wide cells of row i that
// are present; docs/design.md does not name the wide columns.
func requireWideCells(t *testing.T, table *metav1.Table, i int, want map[string]string) {
	t.Helper()
	for j, c := range table.ColumnDefinitions {
		w, ok := want[c.Name]
		if !ok {
			continue
		}
		if got := fmt.Sprint(table.Rows[i].Cells[j]); got != w {
			t.Errorf("row %d: wide column %q is %q, want %q", i, c.Name, got, w)
		}
	}
}

// requireRowObject checks that row i carries the object's metadata, which
// kubectl uses for --show-labels and for names in the output.
func requireRowObject(t *testing.T, table *metav1.Table, i int, name string) {
	t.Helper()
	var obj metav1.PartialObjectMetadata
	if err := json.Unmarshal(table.Rows[i].Object.Raw, &obj); err != nil {
		t.Fatalf("row %d object: %v: %s", i, err, head(table.Rows[i].Object.Raw))
	}
	if obj.Kind != "PartialObjectMetadata" || obj.Name != name {
		t.Errorf("row %d object is %s %q, want PartialObjectMetadata %q", i, obj.Kind, obj.Name, name)
	}
}
