package app

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// testSecrets masks with a fixed key, so that fingerprints are stable in tests.
var testSecrets = secretRenderer{key: []byte("test key")}

func TestValueLines(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value string
		want  []string
	}{
		{name: "one line", key: "A", value: "1", want: []string{"A=1"}},
		{name: "empty", key: "A", value: "", want: []string{"A="}},
		{name: "equals sign in the value", key: "A", value: "x=y", want: []string{"A=x=y"}},
		{
			name: "file ending with a newline", key: "app.yaml", value: "a: 1\nb: 2\n",
			want: []string{"app.yaml=a: 1", "         b: 2"},
		},
		{
			name: "several lines without a final newline are marked", key: "K", value: "a\nb",
			want: []string{"K=a", "  b", `  \ no newline at end of value`},
		},
		{
			name: "one line with a final newline is marked", key: "K", value: "a\n",
			want: []string{"K=a", `  \ newline at end of value`},
		},
		{
			name: "blank lines are kept", key: "K", value: "a\n\nb\n\n",
			want: []string{"K=a", "  ", "  b", "  "},
		},
		{
			name: "indented lines stay indented", key: "K", value: "a:\n  b: 1\n",
			want: []string{"K=a:", "    b: 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := valueLines(tt.key, tt.value); !slices.Equal(got, tt.want) {
				t.Errorf("valueLines(%q, %q) = %q, want %q", tt.key, tt.value, got, tt.want)
			}
		})
	}
}

// TestValueLinesTellValuesApart pins that values differing only in line
// breaks never render alike, or a diff would call them equal.
func TestValueLinesTellValuesApart(t *testing.T) {
	values := []string{"", "\n", "\n\n", "a", "a\n", "a\n\n", "a\nb", "a\nb\n", "a\n\nb", "\na", "a b"}
	seen := map[string]string{}
	for _, v := range values {
		rendered := strings.Join(valueLines("K", v), "\n")
		if other, dup := seen[rendered]; dup {
			t.Errorf("values %q and %q both render as\n%s", other, v, rendered)
		}
		seen[rendered] = v
	}
}

func TestSecretRenderer(t *testing.T) {
	masked := regexp.MustCompile(`^<secret: (\d+ bytes?), fingerprint ([0-9a-f]{8})>$`)
	a := testSecrets.value([]byte("hunter2"))
	m := masked.FindStringSubmatch(a)
	if m == nil {
		t.Fatalf("masked value %q does not match %s", a, masked)
	}
	if m[1] != "7 bytes" {
		t.Errorf("masked value %q gives the size as %q, want 7 bytes", a, m[1])
	}
	if strings.Contains(a, "hunter2") {
		t.Errorf("masked value %q reveals the secret", a)
	}
	if b := testSecrets.value([]byte("hunter2")); b != a {
		t.Errorf("the same secret masks as %q and %q", a, b)
	}
	if b := testSecrets.value([]byte("hunter3")); b == a {
		t.Errorf("different secrets both mask as %q", a)
	}
	if got := testSecrets.value([]byte("x")); !strings.HasPrefix(got, "<secret: 1 byte,") {
		t.Errorf("a one-byte secret masks as %q", got)
	}
	other := secretRenderer{key: []byte("another run")}
	if b := other.value([]byte("hunter2")); b == a {
		t.Errorf("fingerprints do not depend on the key: both %q", a)
	}

	reveal := secretRenderer{reveal: true}
	if got := reveal.value([]byte("hunter2")); got != "hunter2" {
		t.Errorf("revealed value is %q, want hunter2", got)
	}
	if got, want := reveal.value([]byte{0xff, 0x00}), "<binary: 2 bytes, base64 /wA=>"; got != want {
		t.Errorf("revealed binary value is %q, want %q", got, want)
	}

	fresh, err := newSecretRenderer(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh.key) != 32 {
		t.Errorf("a fresh renderer has a key of %d bytes, want 32", len(fresh.key))
	}
}

func TestEntryLines(t *testing.T) {
	got := entryLines(
		map[string]string{"b": "2", "a": "1", "d": "x\ny\n"},
		map[string][]byte{"c": []byte("s3cret")},
		testSecrets,
	)
	want := []string{"a=1", "b=2", "c=" + testSecrets.value([]byte("s3cret")), "d=x", "  y"}
	if !slices.Equal(got, want) {
		t.Errorf("entryLines = %q, want %q", got, want)
	}
	if got, want := entryLines(map[string]string{"A": "\x1b[2Jx\ry"}, nil, testSecrets), []string{`A=^[[2Jx\ry`}; !slices.Equal(got, want) {
		t.Errorf("terminal controls render as %q, want %q", got, want)
	}
	if got := entryLines(nil, nil, testSecrets); len(got) != 0 {
		t.Errorf("no entries render as %q, want nothing", got)
	}
}
