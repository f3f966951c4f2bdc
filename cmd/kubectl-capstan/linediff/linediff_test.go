package linediff

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
		want []Edit
	}{
		{name: "both empty"},
		{
			name: "equal",
			a:    []string{"x", "y"},
			b:    []string{"x", "y"},
			want: []Edit{{Equal, "x"}, {Equal, "y"}},
		},
		{
			name: "all added",
			b:    []string{"x", "y"},
			want: []Edit{{Insert, "x"}, {Insert, "y"}},
		},
		{
			name: "all removed",
			a:    []string{"x", "y"},
			want: []Edit{{Delete, "x"}, {Delete, "y"}},
		},
		{
			name: "one changed in the middle",
			a:    []string{"a", "b", "c"},
			b:    []string{"a", "B", "c"},
			want: []Edit{{Equal, "a"}, {Delete, "b"}, {Insert, "B"}, {Equal, "c"}},
		},
		{
			name: "deletions come before insertions in a block",
			a:    []string{"a", "b", "c", "z"},
			b:    []string{"x", "y", "z"},
			want: []Edit{{Delete, "a"}, {Delete, "b"}, {Delete, "c"}, {Insert, "x"}, {Insert, "y"}, {Equal, "z"}},
		},
		{
			name: "insertion and removal apart",
			a:    []string{"a", "b", "c", "d"},
			b:    []string{"a", "new", "b", "d"},
			want: []Edit{{Equal, "a"}, {Insert, "new"}, {Equal, "b"}, {Delete, "c"}, {Equal, "d"}},
		},
		{
			name: "repeated lines",
			a:    []string{"x", "x", "x"},
			b:    []string{"x", "x"},
			want: []Edit{{Equal, "x"}, {Equal, "x"}, {Delete, "x"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Lines(tt.a, tt.b)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Lines(%q, %q) =\n%v\nwant\n%v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestLinesIsShortest checks on random texts over a small alphabet, where
// lines repeat a lot, that the script turns a into b and is as short as the
// longest common subsequence allows.
func TestLinesIsShortest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomText := func() []string {
		lines := make([]string, rng.IntN(40))
		for i := range lines {
			lines[i] = string(rune('a' + rng.IntN(4)))
		}
		return lines
	}
	for i := range 2000 {
		a, b := randomText(), randomText()
		edits := Lines(a, b)
		var gotA, gotB []string
		changes := 0
		for _, e := range edits {
			if e.Op != Insert {
				gotA = append(gotA, e.Line)
			}
			if e.Op != Delete {
				gotB = append(gotB, e.Line)
			}
			if e.Op != Equal {
				changes++
			}
		}
		if !slices.Equal(gotA, a) || !slices.Equal(gotB, b) {
			t.Fatalf("case %d: the script for %q → %q does not rebuild them: %v", i, a, b, edits)
		}
		if want := len(a) + len(b) - 2*lcsLength(a, b); changes != want {
			t.Fatalf("case %d: %q → %q takes %d changes, want the shortest, %d: %v", i, a, b, changes, want, edits)
		}
	}
}

// lcsLength is the textbook quadratic dynamic program.
func lcsLength(a, b []string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			if a[i] == b[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(prev[j+1], cur[j])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// TestLinesLargeDisjoint guards the linear-space search: two large texts
// with nothing in common must not need memory in the square of their length.
func TestLinesLargeDisjoint(t *testing.T) {
	a := make([]string, 20000)
	b := make([]string, 20000)
	for i := range a {
		a[i] = fmt.Sprintf("a%d", i)
		b[i] = fmt.Sprintf("b%d", i)
	}
	b[10000] = a[5000]
	edits := Lines(a, b)
	equal := 0
	for _, e := range edits {
		if e.Op == Equal {
			equal++
		}
	}
	if equal != 1 || len(edits) != len(a)+len(b)-1 {
		t.Errorf("got %d edits with %d equal, want %d with 1 equal", len(edits), equal, len(a)+len(b)-1)
	}
}

func TestUnified(t *testing.T) {
	lines := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, " ")
	}
	tests := []struct {
		name    string
		a, b    string
		context int
		want    string
	}{
		{name: "equal", a: "a b c", b: "a b c", context: 3, want: ""},
		{name: "both empty", context: 3, want: ""},
		{
			name: "from nothing", b: "x y", context: 3,
			want: "@@ -0,0 +1,2 @@\n+x\n+y\n",
		},
		{
			name: "to nothing", a: "x y", context: 3,
			want: "@@ -1,2 +0,0 @@\n-x\n-y\n",
		},
		{
			name: "single line counts are left out", a: "x", b: "y", context: 3,
			want: "@@ -1 +1 @@\n-x\n+y\n",
		},
		{
			name: "context is trimmed to three lines",
			a:    "1 2 3 4 5 6 7 8 9", b: "1 2 3 4 FIVE 6 7 8 9", context: 3,
			want: "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n",
		},
		{
			name: "insertion after a line names that line",
			a:    "1 2 3 4 5 6 7 8", b: "1 2 3 4 new 5 6 7 8", context: 2,
			want: "@@ -3,4 +3,5 @@\n 3\n 4\n+new\n 5\n 6\n",
		},
		{
			name: "removal at the end",
			a:    "1 2 3 4 5 6", b: "1 2 3 4 5", context: 3,
			want: "@@ -3,4 +3,3 @@\n 3\n 4\n 5\n-6\n",
		},
		{
			name: "changes six lines apart share a hunk",
			a:    "a 1 2 3 4 5 6 b", b: "A 1 2 3 4 5 6 B", context: 3,
			want: "@@ -1,8 +1,8 @@\n-a\n+A\n 1\n 2\n 3\n 4\n 5\n 6\n-b\n+B\n",
		},
		{
			name: "changes seven lines apart make two hunks",
			a:    "a 1 2 3 4 5 6 7 b", b: "A 1 2 3 4 5 6 7 B", context: 3,
			want: "@@ -1,4 +1,4 @@\n-a\n+A\n 1\n 2\n 3\n@@ -6,4 +6,4 @@\n 5\n 6\n 7\n-b\n+B\n",
		},
		{
			name: "no context",
			a:    "1 2 3", b: "1 two 3", context: 0,
			want: "@@ -2 +2 @@\n-2\n+two\n",
		},
		{
			name: "insertion with no context",
			a:    "1 2", b: "1 x 2", context: 0,
			want: "@@ -1,0 +2 @@\n+x\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Unified("old", "new", lines(tt.a), lines(tt.b), tt.context)
			want := tt.want
			if want != "" {
				want = "--- old\n+++ new\n" + want
			}
			if got != want {
				t.Errorf("Unified(%q, %q, %d) =\n%s\nwant\n%s", tt.a, tt.b, tt.context, got, want)
			}
		})
	}
}
