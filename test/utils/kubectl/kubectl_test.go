package kubectl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fake writes a stand-in kubectl that prints its arguments, HOME and
// stdin, and fails when its first argument is "fail".
func fake(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubectl")
	script := "#!/bin/sh\n[ \"$1\" = fail ] && { echo 'it failed' >&2; exit 1; }\necho \"args: $*\"\necho \"home: $HOME\"\necho \"extra: $EXTRA\"\ncat\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRun(t *testing.T) {
	home := t.TempDir()
	k := Kubectl{Path: fake(t), Kubeconfig: "/k/config", Home: home, CacheDir: "/k/cache", Env: []string{"EXTRA=yes"}}
	out := k.RunStdin(t, "from stdin\n", "capstan", "history", "x")
	for _, want := range []string{
		"args: capstan history x --kubeconfig=/k/config --cache-dir=/k/cache\n",
		"home: " + home + "\n",
		"extra: yes\n",
		"from stdin\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if stderr := k.Fail(t, "", "fail"); stderr != "it failed\n" {
		t.Errorf("Fail returned stderr %q", stderr)
	}
	if _, _, code := k.ExitCode(t, "fail"); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

func TestRequireAt(t *testing.T) {
	if got := RequireAt(t, fake(t), "testing"); !strings.HasSuffix(got, "kubectl") {
		t.Fatalf("RequireAt returned %s", got)
	}
}
