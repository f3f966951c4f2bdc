package app

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned/fake"
)

// exportSecret is the value of the secret entry of "jobs"; no output may
// hold it unless --show-secrets is given.
const exportSecret = "hunter2 it's \"secret\"\n"

// exportData are the data entries of "jobs" at revision 2, values a shell
// could easily get wrong.
var exportData = map[string]string{
	"QUOTES":   `it's "double" and 'single' and '\'' too`,
	"NEWLINES": "line one\n  line two\n\n",
	"SPACES":   "  leading, inner  and trailing  ",
	"EMPTY":    "",
	"SPECIAL":  "$HOME ${PATH} `id` $(id) \\ \\n * ? [a] ~ ; & | < > ( ) # ! %s\t\r\x1b",
	"UNICODE":  "grüße, 日本, \u2028",
}

// exportObjects is a ConfigSet "jobs" at revision 2 with its two revisions.
func exportObjects() []k8sruntime.Object {
	secretData := map[string][]byte{"DB_PASSWORD": []byte(exportSecret)}
	cs := &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "jobs", Namespace: testNamespace},
		Spec:       v1beta1.ConfigSetSpec{Data: exportData, SecretData: secretData},
		Status:     v1beta1.ConfigSetStatus{CurrentRevision: 2},
	}
	r1 := testRevision("jobs", 1, map[string]string{"QUOTES": "old", "ONLY_IN_1": "1"}, map[string][]byte{"DB_PASSWORD": []byte("old-secret")})
	r2 := testRevision("jobs", 2, exportData, secretData)
	return []k8sruntime.Object{cs, r1, r2}
}

// exportConfigSet is a ConfigSet at revision 1 with the given entries.
func exportConfigSet(name string, data map[string]string, secretData map[string][]byte) *v1beta1.ConfigSet {
	return &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec:       v1beta1.ConfigSetSpec{Data: data, SecretData: secretData},
		Status:     v1beta1.ConfigSetStatus{CurrentRevision: 1},
	}
}

// withSecret returns exportData with the secret entry added.
func withSecret() map[string]string {
	m := maps.Clone(exportData)
	m["DB_PASSWORD"] = exportSecret
	return m
}

func TestExportEnv(t *testing.T) {
	client := fake.NewClientset(exportObjects()...)
	stdout, stderr, err := runPlugin(t, client, "export", "jobs", "--show-secrets")
	if err != nil {
		t.Fatalf("export: %v\nstderr: %s", err, stderr)
	}
	if stderr != "" {
		t.Errorf("export --show-secrets wrote to stderr: %q", stderr)
	}
	// One line per key, sorted, but a quoted value may span lines.
	var keys []string
	for _, line := range strings.Split(stdout, "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && isShellName(k) && !strings.HasPrefix(line, " ") {
			keys = append(keys, k)
		}
	}
	if want := slices.Sorted(maps.Keys(withSecret())); !slices.Equal(keys, want) {
		t.Errorf("keys printed in the order %q, want %q:\n%s", keys, want, stdout)
	}
	for _, want := range []string{
		`QUOTES='it'\''s "double" and '\''single'\'' and '\''\'\'''\'' too'` + "\n",
		"EMPTY=''\n",
		"NEWLINES='line one\n  line two\n\n'\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	assertShellReadsBack(t, stdout, withSecret())
}

// assertShellReadsBack checks that /bin/sh, sourcing env with set -a or
// evaluating it, gives each variable exactly its value in want.
func assertShellReadsBack(t *testing.T, env string, want map[string]string) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skipf("no /bin/sh to read the output back: %v", err)
	}
	file := filepath.Join(t.TempDir(), "jobs.env")
	if err := os.WriteFile(file, []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, load := range []string{`set -a; . "$1"`, `eval "$(cat "$1")"`} {
		for key, value := range want {
			script := load + `; printf %s "$` + key + `"`
			cmd := exec.Command("/bin/sh", "-c", script, "sh", file)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("sh -c %q: %v\n%s", script, err, stderr.String())
			}
			if string(got) != value {
				t.Errorf("with %s, $%s is %q, want %q", load, key, got, value)
			}
		}
	}
}

func TestExportLeavesOutSecrets(t *testing.T) {
	outDir := filepath.Join(t.TempDir(), "out")
	for _, args := range [][]string{
		{"export", "jobs"},
		{"export", "jobs", "--format", "json"},
		{"export", "jobs", "--format=yaml"},
		{"export", "jobs", "--revision", "2"},
		{"export", "jobs", "--output-dir", outDir},
	} {
		t.Run(strings.Join(args[1:], " "), func(t *testing.T) {
			stdout, stderr, err := runPlugin(t, fake.NewClientset(exportObjects()...), args...)
			if err != nil {
				t.Fatalf("export: %v\nstderr: %s", err, stderr)
			}
			for _, s := range []string{stdout, stderr} {
				if strings.Contains(s, "hunter2") || strings.Contains(s, "DB_PASSWORD") {
					t.Errorf("the output names or reveals the secret entry:\nstdout: %s\nstderr: %s", stdout, stderr)
				}
			}
			if want := "Left out 1 secret entry of configset/jobs revision 2; --show-secrets includes it.\n"; !strings.HasSuffix(stderr, want) {
				t.Errorf("stderr is %q, want it to end with %q", stderr, want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(outDir, "DB_PASSWORD")); !os.IsNotExist(err) {
		t.Errorf("--output-dir without --show-secrets wrote the secret entry (stat: %v)", err)
	}

	cs := exportConfigSet("many", map[string]string{"A": "1"}, map[string][]byte{"B": []byte("hunter2"), "C": []byte("hunter2")})
	stdout, stderr, err := runPlugin(t, fake.NewClientset(cs), "export", "many")
	if err != nil || stdout != "A='1'\n" || stderr != "Left out 2 secret entries of configset/many revision 1; --show-secrets includes them.\n" {
		t.Errorf("export of two secrets: error %v, stdout %q, stderr %q", err, stdout, stderr)
	}
}

func TestExportRevision(t *testing.T) {
	client := fake.NewClientset(exportObjects()...)
	stdout, stderr, err := runPlugin(t, client, "export", "jobs", "--revision", "1", "--format", "json", "--show-secrets")
	if err != nil {
		t.Fatalf("export --revision 1: %v\nstderr: %s", err, stderr)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if want := map[string]string{"QUOTES": "old", "ONLY_IN_1": "1", "DB_PASSWORD": "old-secret"}; !maps.Equal(got, want) {
		t.Errorf("revision 1 exports as %q, want %q", got, want)
	}

	stdout, _, err = runPlugin(t, client, "export", "jobs", "--revision=1")
	if err != nil || stdout != "ONLY_IN_1='1'\nQUOTES='old'\n" {
		t.Errorf("export --revision=1: error %v, output %q", err, stdout)
	}

	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"export", "jobs", "--revision", "9"}, "revision 9 of configset/jobs is not kept (kept revisions: 1-2)"},
		{[]string{"export", "jobs", "--revision", "0"}, "invalid revision 0 for --revision: a revision is a whole number of at least 1"},
		{[]string{"export", "nope", "--revision", "1"}, `configset "nope" not found in namespace "shop"`},
		{[]string{"export", "nope"}, `configset "nope" not found in namespace "shop"`},
	} {
		stdout, _, err := runPlugin(t, client, tt.args...)
		if err == nil || err.Error() != tt.wantErr || stdout != "" {
			t.Errorf("%q: error %v, want %q; output %q", tt.args, err, tt.wantErr, stdout)
		}
	}
}

func TestExportJSONAndYAML(t *testing.T) {
	client := fake.NewClientset(exportObjects()...)
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			stdout, stderr, err := runPlugin(t, client, "export", "jobs", "--format", format, "--show-secrets")
			if err != nil {
				t.Fatalf("export: %v\nstderr: %s", err, stderr)
			}
			var got map[string]string
			if format == "json" {
				err = json.Unmarshal([]byte(stdout), &got)
			} else {
				err = yaml.UnmarshalStrict([]byte(stdout), &got)
			}
			if err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, stdout)
			}
			if want := withSecret(); !maps.Equal(got, want) {
				t.Errorf("output parses as\n%q\nwant\n%q\noutput:\n%s", got, want, stdout)
			}
			// Keys come sorted.
			var at []int
			for _, k := range slices.Sorted(maps.Keys(got)) {
				at = append(at, strings.Index(stdout, k))
			}
			if !slices.IsSorted(at) {
				t.Errorf("keys are not sorted:\n%s", stdout)
			}
		})
	}

	stdout, _, err := runPlugin(t, fake.NewClientset(exportConfigSet("html", map[string]string{"A": "<a&b>"}, nil)), "export", "html", "--format", "json")
	if err != nil || stdout != "{\n  \"A\": \"<a&b>\"\n}\n" {
		t.Errorf("JSON export: error %v, output %q", err, stdout)
	}
	stdout, _, err = runPlugin(t, fake.NewClientset(exportConfigSet("empty", nil, nil)), "export", "empty", "--format", "yaml")
	if err != nil || stdout != "{}\n" {
		t.Errorf("YAML export of no entries: error %v, output %q", err, stdout)
	}
}

func TestExportOutputDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are POSIX")
	}
	dir := filepath.Join(t.TempDir(), "a", "b")
	// A file of an earlier export, world-readable, and a symbolic link in
	// the place of a key must both be replaced, not written through.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "DB_PASSWORD"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "QUOTES")); err != nil {
		t.Fatal(err)
	}

	objs := exportObjects()
	cs := objs[0].(*v1beta1.ConfigSet)
	cs.Spec.Data = maps.Clone(cs.Spec.Data)
	cs.Spec.Data["app.yaml"] = "port: 80\n"
	cs.Spec.SecretData = map[string][]byte{"DB_PASSWORD": []byte(exportSecret), "tls.key": {0x00, 0xff, 0x01, '\n'}}
	stdout, stderr, err := runPlugin(t, fake.NewClientset(objs...), "export", "jobs", "--show-secrets", "--output-dir", dir)
	if err != nil {
		t.Fatalf("export: %v\nstderr: %s", err, stderr)
	}
	if stdout != "" {
		t.Errorf("--output-dir printed %q", stdout)
	}
	if want := "Wrote 9 files to \"" + dir + "\" from configset/jobs revision 2.\n"; stderr != want {
		t.Errorf("stderr is %q, want %q", stderr, want)
	}
	want := map[string]struct {
		content string
		mode    os.FileMode
	}{
		"DB_PASSWORD": {exportSecret, 0o600},
		"tls.key":     {"\x00\xff\x01\n", 0o600},
		"app.yaml":    {"port: 80\n", 0o644},
	}
	for k, v := range exportData {
		want[k] = struct {
			content string
			mode    os.FileMode
		}{v, 0o644}
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("the directory holds %d files, want %d: %v", len(files), len(want), files)
	}
	for name, w := range want {
		path := filepath.Join(dir, name)
		info, err := os.Lstat(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !info.Mode().IsRegular() || info.Mode().Perm() != w.mode {
			t.Errorf("%s has mode %v, want a regular file with mode %v", name, info.Mode(), w.mode)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != w.content {
			t.Errorf("%s holds %q (%v), want %q", name, got, err, w.content)
		}
	}
	if got, _ := os.ReadFile(outside); string(got) != "untouched" {
		t.Errorf("the export wrote through a symbolic link: %q", got)
	}
}

func TestExportRefusesKeys(t *testing.T) {
	tests := []struct {
		name       string
		data       map[string]string
		secretData map[string][]byte
		args       []string
		wantErr    string
	}{
		{
			name:    "not shell names",
			data:    map[string]string{"GOOD": "1", "app.yaml": "x", "9LIVES": "y", "with-dash": "z"},
			args:    []string{"--format", "env"},
			wantErr: `cannot print keys "9LIVES", "app.yaml", "with-dash" of configset/bad revision 1 as shell variables: a variable name has only letters, digits and '_' and does not start with a digit; use --format json, --format yaml or --output-dir`,
		},
		{
			name:       "a secret not shown is not checked",
			data:       map[string]string{"GOOD": "1"},
			secretData: map[string][]byte{"tls.key": []byte("x")},
		},
		{
			name:       "NUL in a value",
			secretData: map[string][]byte{"BLOB": {'a', 0, 'b'}},
			args:       []string{"--show-secrets"},
			wantErr:    `cannot print key "BLOB" of configset/bad revision 1 as shell variables: a value holds a NUL byte, which a shell variable cannot; use --output-dir`,
		},
		{
			name:       "binary value as JSON",
			secretData: map[string][]byte{"BLOB": {0xff}},
			args:       []string{"--show-secrets", "--format", "json"},
			wantErr:    `cannot print key "BLOB" of configset/bad revision 1 as JSON: a value is not UTF-8 text; use --output-dir`,
		},
		{
			name:       "binary value as YAML",
			secretData: map[string][]byte{"BLOB": {0xff}},
			args:       []string{"--show-secrets", "--format", "yaml"},
			wantErr:    `cannot print key "BLOB" of configset/bad revision 1 as YAML: a value is not UTF-8 text; use --output-dir`,
		},
		{
			name: "not shell names are fine in JSON",
			data: map[string]string{"app.yaml": "x"},
			args: []string{"--format", "json"},
		},
		{
			name:    "dot-dot as a file name",
			data:    map[string]string{"..": "x", "ok": "y"},
			args:    []string{"--output-dir", "DIR"},
			wantErr: `cannot write key ".." of configset/bad revision 1 to files: a file name cannot be empty, "." or "..", nor contain "/"`,
		},
		{
			name:    "dot and slash as file names",
			data:    map[string]string{".": "x", "a/b": "y", "../up": "z"},
			args:    []string{"--output-dir", "DIR"},
			wantErr: `cannot write keys ".", "../up", "a/b" of configset/bad revision 1 to files: a file name cannot be empty, "." or "..", nor contain "/"`,
		},
		{
			name:    "unknown format",
			data:    map[string]string{"A": "1"},
			args:    []string{"--format", "toml"},
			wantErr: `invalid --format "toml": use "env", "json" or "yaml"`,
		},
		{
			name:    "format and output dir",
			data:    map[string]string{"A": "1"},
			args:    []string{"--format", "json", "--output-dir", "DIR"},
			wantErr: "--format and --output-dir cannot be used together: --output-dir writes each value to a file of its own",
		},
		{
			name:    "empty output dir",
			data:    map[string]string{"A": "1"},
			args:    []string{"--output-dir="},
			wantErr: "--output-dir needs a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			args := []string{"export", "bad"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "DIR", dir))
			}
			stdout, _, err := runPlugin(t, fake.NewClientset(exportConfigSet("bad", tt.data, tt.secretData)), args...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("export: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if stdout != "" {
				t.Errorf("a failed export printed %q", stdout)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a failed export made the output directory (stat: %v)", err)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"":      "''",
		"a b":   "'a b'",
		"it's":  `'it'\''s'`,
		"''":    `''\'''\'''`,
		"$x\n":  "'$x\n'",
		`a\'b`:  `'a\'\''b'`,
		"tab\t": "'tab\t'",
	}
	for in, want := range tests {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
	for name, want := range map[string]bool{"A": true, "_": true, "a_1": true, "": false, "1A": false, "a.b": false, "a-b": false, "ü": false} {
		if got := isShellName(name); got != want {
			t.Errorf("isShellName(%q) = %v, want %v", name, got, want)
		}
	}
}
