package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clienttesting "k8s.io/client-go/testing"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/pkg/generated/clientset/versioned/fake"
)

const testNamespace = "shop"

// testNow is the clock of the history tests; revision n is n hours younger
// than testEpoch.
var (
	testEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	testNow   = testEpoch.Add(24 * time.Hour)
)

func testRevision(configSet string, n int64, data map[string]string, secretData map[string][]byte) *v1beta1.ConfigRevision {
	return &v1beta1.ConfigRevision{
		ObjectMeta: metav1.ObjectMeta{
			// Deliberately not <configset>-<n>: the plugin must not rely on names.
			Name:              fmt.Sprintf("%s-x%d", configSet, n),
			Namespace:         testNamespace,
			CreationTimestamp: metav1.NewTime(testEpoch.Add(time.Duration(n) * time.Hour)),
		},
		ConfigSetName: configSet,
		Revision:      n,
		Data:          data,
		SecretData:    secretData,
		Author:        "alice",
	}
}

// testObjects is a ConfigSet "checkout" at revision 3 with its history, added
// out of order, and the history of another ConfigSet.
func testObjects() []runtime.Object {
	r1 := testRevision("checkout", 1, map[string]string{"LOG_LEVEL": "info", "app.yaml": "port: 80\nworkers: 2\n"}, map[string][]byte{"DB_PASSWORD": []byte("hunter2")})
	r1.ChangeCause = "initial import"
	r2 := testRevision("checkout", 2, map[string]string{"LOG_LEVEL": "debug", "app.yaml": "port: 80\nworkers: 2\n"}, map[string][]byte{"DB_PASSWORD": []byte("hunter2")})
	r2.Author = "bob"
	r3 := testRevision("checkout", 3, map[string]string{"LOG_LEVEL": "info", "app.yaml": "port: 80\nworkers: 2\n"}, map[string][]byte{"DB_PASSWORD": []byte("hunter2")})
	r3.RollbackOf = 1
	r3.ChangeCause = "undo\tdebug"
	other := testRevision("cart", 7, map[string]string{"X": "1"}, nil)
	cs := &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: testNamespace},
		Spec: v1beta1.ConfigSetSpec{
			Data:       map[string]string{"LOG_LEVEL": "info", "app.yaml": "port: 80\nworkers: 2\n"},
			SecretData: map[string][]byte{"DB_PASSWORD": []byte("hunter2")},
		},
		Status: v1beta1.ConfigSetStatus{CurrentRevision: 3},
	}
	return []runtime.Object{cs, r3, other, r1, r2}
}

// runPlugin runs the plugin's command tree against client in testNamespace.
func runPlugin(t *testing.T, client versioned.Interface, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{
		streams: genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		client:  func() (versioned.Interface, string, error) { return client, testNamespace, nil },
	}
	cmd := newCommand(e)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestHistoryTable(t *testing.T) {
	objs := testObjects()
	revisions := []v1beta1.ConfigRevision{*objs[3].(*v1beta1.ConfigRevision), *objs[4].(*v1beta1.ConfigRevision), *objs[1].(*v1beta1.ConfigRevision)}
	var names []string
	for _, c := range historyTable(revisions, 3, testNow).ColumnDefinitions {
		names = append(names, strings.ToUpper(c.Name))
	}
	if want := []string{"CURRENT", "REVISION", "AUTHOR", "CAUSE", "ROLLBACK-OF", "KEYS", "AGE"}; !slices.Equal(names, want) {
		t.Errorf("columns are %q, want %q", names, want)
	}
	table := historyTable(revisions, 3, testNow)
	want := [][]any{
		{"", int64(1), "alice", "initial import", none, 3, "23h"},
		{"", int64(2), "bob", none, none, 3, "22h"},
		{currentMark, int64(3), "alice", "undo debug", "1", 3, "21h"},
	}
	if len(table.Rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(table.Rows), len(want))
	}
	for i, row := range table.Rows {
		if !slices.Equal(row.Cells, want[i]) {
			t.Errorf("row %d is %v, want %v", i, row.Cells, want[i])
		}
	}
}

func TestHistoryCommand(t *testing.T) {
	client := fake.NewClientset(testObjects()...)
	stdout, stderr, err := runPlugin(t, client, "history", "checkout")
	if err != nil {
		t.Fatalf("history: %v\nstderr: %s", err, stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	patterns := []string{
		`^CURRENT   REVISION   AUTHOR   CAUSE            ROLLBACK-OF   KEYS   AGE$`,
		`^          1          alice    initial import   <none>        3      \S+$`,
		`^          2          bob      <none>           <none>        3      \S+$`,
		// The tab in the cause must not break the columns.
		`^\*         3          alice    undo debug       1             3      \S+$`,
	}
	if len(lines) != len(patterns) {
		t.Fatalf("history printed %d lines, want %d:\n%s", len(lines), len(patterns), stdout)
	}
	for i, p := range patterns {
		if !regexp.MustCompile(p).MatchString(lines[i]) {
			t.Errorf("line %d is %q, want it to match %s", i, lines[i], p)
		}
	}

	stdout, _, err = runPlugin(t, client, "history", "checkout", "--no-headers")
	if err != nil || strings.Contains(stdout, "REVISION") || len(strings.Split(strings.TrimSpace(stdout), "\n")) != 3 {
		t.Errorf("history --no-headers printed (err %v):\n%s", err, stdout)
	}

	_, _, err = runPlugin(t, client, "history", "missing")
	if err == nil || err.Error() != `configset "missing" not found in namespace "shop"` {
		t.Errorf("history of a missing configset: error %v", err)
	}
	if _, _, err = runPlugin(t, client, "history"); err == nil {
		t.Errorf("history without a name succeeded")
	}
}

func TestDiffCommand(t *testing.T) {
	maskedPassword := regexp.QuoteMeta("DB_PASSWORD=<secret: 7 bytes, fingerprint ") + `[0-9a-f]{8}>`
	tests := []struct {
		name    string
		args    []string
		want    []string // regular expressions, one for each line
		wantErr string
	}{
		{
			name: "revision against current",
			args: []string{"diff", "checkout", "2"},
			want: []string{
				`^--- checkout revision 2$`,
				`^\+\+\+ checkout revision 3 \(current\)$`,
				`^@@ -1,4 \+1,4 @@$`,
				`^ ` + maskedPassword + `$`,
				`^-LOG_LEVEL=debug$`,
				`^\+LOG_LEVEL=info$`,
				`^ app\.yaml=port: 80$`,
				`^          workers: 2$`,
			},
		},
		{
			name: "two revisions",
			args: []string{"diff", "checkout", "1", "2"},
			want: []string{`^--- checkout revision 1$`, `^\+\+\+ checkout revision 2$`, `^@@`, `^ DB_PASSWORD`, `^-LOG_LEVEL=info$`, `^\+LOG_LEVEL=debug$`, `^ app`, `^  `},
		},
		{
			name: "identical",
			args: []string{"diff", "checkout", "1", "3"},
			want: []string{`^no differences between checkout revision 1 and checkout revision 3$`},
		},
		{
			name: "current as the first side",
			args: []string{"diff", "checkout", "current", "2"},
			want: []string{`^--- checkout revision 3 \(current\)$`, `^\+\+\+ checkout revision 2$`, `^@@`, `^ DB`, `^-LOG_LEVEL=info$`, `^\+LOG_LEVEL=debug$`, `^ app`, `^  `},
		},
		{
			name:    "revision not kept",
			args:    []string{"diff", "checkout", "9"},
			wantErr: `revision 9 of configset/checkout is not kept (kept revisions: 1-3)`,
		},
		{
			name:    "other configset's revision is not this one's",
			args:    []string{"diff", "checkout", "7"},
			wantErr: `revision 7 of configset/checkout is not kept (kept revisions: 1-3)`,
		},
		{
			name:    "bad revision",
			args:    []string{"diff", "checkout", "0"},
			wantErr: `invalid revision "0": a revision is a whole number of at least 1`,
		},
		{
			name:    "missing configset",
			args:    []string{"diff", "nope", "1"},
			wantErr: `configset "nope" not found in namespace "shop"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runPlugin(t, fake.NewClientset(testObjects()...), tt.args...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q; output:\n%s", err, tt.wantErr, stdout)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			requireLines(t, stdout, tt.want)
		})
	}
}

func TestWriteDiff(t *testing.T) {
	password := func(s string) map[string][]byte { return map[string][]byte{"PASSWORD": []byte(s)} }
	config := "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\ni: 9\n"
	tests := []struct {
		name        string
		a, b        diffSide
		showSecrets bool
		want        string
	}{
		{
			name: "addition, removal and change",
			a:    diffSide{label: "x revision 1", data: map[string]string{"A": "1", "B": "2", "C": "3"}},
			b:    diffSide{label: "x revision 2", data: map[string]string{"A": "1", "C": "three", "D": "4"}},
			want: "--- x revision 1\n+++ x revision 2\n@@ -1,3 +1,3 @@\n A=1\n-B=2\n-C=3\n+C=three\n+D=4\n",
		},
		{
			name: "changed secret is masked",
			a:    diffSide{label: "x revision 1", secretData: password("hunter2")},
			b:    diffSide{label: "x revision 2", secretData: password("correct horse")},
			want: "--- x revision 1\n+++ x revision 2\n@@ -1 +1 @@\n" +
				"-PASSWORD=" + testSecrets.value([]byte("hunter2")) + "\n" +
				"+PASSWORD=" + testSecrets.value([]byte("correct horse")) + "\n",
		},
		{
			name:        "changed secret is shown",
			a:           diffSide{label: "x revision 1", secretData: password("hunter2")},
			b:           diffSide{label: "x revision 2", secretData: password("correct horse")},
			showSecrets: true,
			want:        "--- x revision 1\n+++ x revision 2\n@@ -1 +1 @@\n-PASSWORD=hunter2\n+PASSWORD=correct horse\n",
		},
		{
			name: "unchanged secret is no difference",
			a:    diffSide{label: "x revision 1", secretData: password("hunter2")},
			b:    diffSide{label: "x revision 2", secretData: password("hunter2")},
			want: "no differences between x revision 1 and x revision 2\n",
		},
		{
			name: "entry moved from data to secretData",
			a:    diffSide{label: "x revision 1", data: map[string]string{"PASSWORD": "hunter2"}},
			b:    diffSide{label: "x revision 2", secretData: password("hunter2")},
			want: "--- x revision 1\n+++ x revision 2\n@@ -1 +1 @@\n-PASSWORD=hunter2\n+PASSWORD=" + testSecrets.value([]byte("hunter2")) + "\n",
		},
		{
			name: "one line of a multi-line value, with trimmed context",
			a:    diffSide{label: "x revision 1", data: map[string]string{"Z": "z", "cfg": config}},
			b:    diffSide{label: "x revision 2", data: map[string]string{"Z": "z", "cfg": strings.Replace(config, "e: 5", "e: five", 1)}},
			want: "--- x revision 1\n+++ x revision 2\n@@ -3,7 +3,7 @@\n" +
				"     b: 2\n     c: 3\n     d: 4\n-    e: 5\n+    e: five\n     f: 6\n     g: 7\n     h: 8\n",
		},
		{
			name: "multi-line value added",
			a:    diffSide{label: "x revision 1", data: map[string]string{"A": "1"}},
			b:    diffSide{label: "x revision 2", data: map[string]string{"A": "1", "B": "x\ny"}},
			want: "--- x revision 1\n+++ x revision 2\n@@ -1 +1,4 @@\n A=1\n+B=x\n+  y\n+  \\ no newline at end of value\n",
		},
		{
			name: "everything removed",
			a:    diffSide{label: "x revision 1", data: map[string]string{"A": "1", "B": "2"}},
			b:    diffSide{label: "x revision 2"},
			want: "--- x revision 1\n+++ x revision 2\n@@ -1,2 +0,0 @@\n-A=1\n-B=2\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := testSecrets
			secrets.reveal = tt.showSecrets
			var out bytes.Buffer
			if err := writeDiff(&out, tt.a, tt.b, secrets); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("diff is\n%s\nwant\n%s", out.String(), tt.want)
			}
			if !tt.showSecrets && strings.Contains(out.String(), "hunter2") && tt.a.data == nil {
				t.Errorf("the masked diff reveals a secret:\n%s", out.String())
			}
		})
	}
}

func TestRollbackCommand(t *testing.T) {
	immutable := true
	tests := []struct {
		name string
		args []string
		// reply is what the server answers to the rollback; nil means the
		// rollback must not be sent.
		reply      func(rb *v1beta1.ConfigSetRollback, opts metav1.CreateOptions) (*v1beta1.ConfigSet, error)
		immutable  bool
		wantOut    string
		wantErr    string
		wantDryRun bool
	}{
		{
			name: "rolls back",
			args: []string{"rollback", "checkout", "--to", "2"},
			reply: func(rb *v1beta1.ConfigSetRollback, _ metav1.CreateOptions) (*v1beta1.ConfigSet, error) {
				return &v1beta1.ConfigSet{Status: v1beta1.ConfigSetStatus{CurrentRevision: 4}}, nil
			},
			wantOut: "configset/checkout rolled back to revision 2 (now revision 4)\n",
		},
		{
			name: "server dry run",
			args: []string{"rollback", "checkout", "--to=2", "--dry-run=server"},
			reply: func(rb *v1beta1.ConfigSetRollback, _ metav1.CreateOptions) (*v1beta1.ConfigSet, error) {
				return &v1beta1.ConfigSet{Status: v1beta1.ConfigSetStatus{CurrentRevision: 4}}, nil
			},
			wantOut:    "configset/checkout rolled back to revision 2 (now revision 4) (server dry run)\n",
			wantDryRun: true,
		},
		{
			name: "bare --dry-run means server",
			args: []string{"rollback", "checkout", "--dry-run", "--to", "2"},
			reply: func(rb *v1beta1.ConfigSetRollback, _ metav1.CreateOptions) (*v1beta1.ConfigSet, error) {
				return &v1beta1.ConfigSet{Status: v1beta1.ConfigSetStatus{CurrentRevision: 4}}, nil
			},
			wantOut:    "configset/checkout rolled back to revision 2 (now revision 4) (server dry run)\n",
			wantDryRun: true,
		},
		{
			name: "same entries make no revision",
			args: []string{"rollback", "checkout", "--to", "1"},
			reply: func(rb *v1beta1.ConfigSetRollback, _ metav1.CreateOptions) (*v1beta1.ConfigSet, error) {
				return &v1beta1.ConfigSet{Status: v1beta1.ConfigSetStatus{CurrentRevision: 3}}, nil
			},
			wantOut: "configset/checkout already has the entries of revision 1 (still revision 3)\n",
		},
		{
			name: "revision not kept",
			args: []string{"rollback", "checkout", "--to", "9"},
			reply: func(rb *v1beta1.ConfigSetRollback, _ metav1.CreateOptions) (*v1beta1.ConfigSet, error) {
				return nil, apierrors.NewNotFound(v1beta1.Resource("configrevisions"), "revision 9 of configset checkout")
			},
			wantErr: "revision 9 of configset/checkout is not kept (kept revisions: 1-3)",
		},
		{
			name: "immutable",
			args: []string{"rollback", "checkout", "--to", "1"},
			reply: func(rb *v1beta1.ConfigSetRollback, _ metav1.CreateOptions) (*v1beta1.ConfigSet, error) {
				return nil, apierrors.NewConflict(v1beta1.Resource("configsets"), "checkout", errors.New("configset is immutable: its entries cannot be rolled back"))
			},
			immutable: true,
			wantErr:   "cannot roll back configset/checkout: it is immutable (spec.immutable is true), so its entries can no longer change",
		},
		{
			name: "other refusal",
			args: []string{"rollback", "checkout", "--to", "1"},
			reply: func(rb *v1beta1.ConfigSetRollback, _ metav1.CreateOptions) (*v1beta1.ConfigSet, error) {
				return nil, apierrors.NewForbidden(v1beta1.Resource("configsets"), "checkout", errors.New("policy no-debug denies it"))
			},
			wantErr: `cannot roll back configset/checkout to revision 1: configsets.config.capstan.dev "checkout" is forbidden: policy no-debug denies it`,
		},
		{
			name:    "missing configset",
			args:    []string{"rollback", "nope", "--to", "1"},
			wantErr: `configset "nope" not found in namespace "shop"`,
		},
		{
			name:    "--to is required",
			args:    []string{"rollback", "checkout"},
			wantErr: "--to is required: name the revision to restore (see kubectl capstan history checkout)",
		},
		{
			name:    "--to must be positive",
			args:    []string{"rollback", "checkout", "--to", "0"},
			wantErr: "invalid revision 0 for --to: a revision is a whole number of at least 1",
		},
		{
			name:    "client dry run",
			args:    []string{"rollback", "checkout", "--to", "1", "--dry-run=client"},
			wantErr: "--dry-run=client is not supported: only the server knows the revisions it kept; use --dry-run=server",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := testObjects()
			if tt.immutable {
				objs[0].(*v1beta1.ConfigSet).Spec.Immutable = &immutable
			}
			client := fake.NewClientset(objs...)
			called := false
			client.PrependReactor("create", "configsets", func(action clienttesting.Action) (bool, runtime.Object, error) {
				if action.GetSubresource() != "rollback" {
					return false, nil, nil
				}
				called = true
				create := action.(clienttesting.CreateActionImpl)
				rb := create.Object.(*v1beta1.ConfigSetRollback)
				if create.Name != "checkout" || rb.Revision == 0 {
					t.Errorf("rollback of %q to %d", create.Name, rb.Revision)
				}
				if got := slices.Equal(create.CreateOptions.DryRun, []string{metav1.DryRunAll}); got != tt.wantDryRun {
					t.Errorf("dry run is %q", create.CreateOptions.DryRun)
				}
				if tt.reply == nil {
					t.Fatalf("the rollback was sent")
				}
				cs, err := tt.reply(rb, create.CreateOptions)
				return true, cs, err
			})
			stdout, _, err := runPlugin(t, client, tt.args...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !called {
				t.Errorf("the rollback was not sent")
			}
			if stdout != tt.wantOut {
				t.Errorf("output %q, want %q", stdout, tt.wantOut)
			}
		})
	}
}

func TestFormatRevisionNumbers(t *testing.T) {
	tests := []struct {
		in   []int64
		want string
	}{
		{nil, ""},
		{[]int64{4}, "4"},
		{[]int64{1, 2}, "1-2"},
		{[]int64{1, 3, 4, 5, 9}, "1, 3-5, 9"},
	}
	for _, tt := range tests {
		if got := formatRevisionNumbers(tt.in); got != tt.want {
			t.Errorf("formatRevisionNumbers(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// requireLines checks each line of out against a regular expression.
func requireLines(t *testing.T, out string, patterns []string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(patterns) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(patterns), out)
	}
	for i, p := range patterns {
		if !regexp.MustCompile(p).MatchString(lines[i]) {
			t.Errorf("line %d is %q, want it to match %s\n%s", i+1, lines[i], p, out)
		}
	}
}
