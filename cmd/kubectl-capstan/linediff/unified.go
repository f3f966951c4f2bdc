package linediff

import (
	"fmt"
	"strings"
)

// Unified returns the unified diff of a → b with `---`/`+++` header lines
// naming them from and to, and hunks with context unchanged lines around each
// change, as `diff -U context` prints it. It returns "" when a and b are equal.
func Unified(from, to string, a, b []string, context int) string {
	return Format(from, to, Lines(a, b), context)
}

// Format prints an edit script from Lines as a unified diff; see Unified.
func Format(from, to string, edits []Edit, context int) string {
	if context < 0 {
		context = 0
	}
	var changes []int
	for i, e := range edits {
		if e.Op != Equal {
			changes = append(changes, i)
		}
	}
	if len(changes) == 0 {
		return ""
	}

	// aPos[i] and bPos[i] count the lines of a and b before edits[i].
	aPos := make([]int, len(edits)+1)
	bPos := make([]int, len(edits)+1)
	for i, e := range edits {
		aPos[i+1], bPos[i+1] = aPos[i], bPos[i]
		if e.Op != Insert {
			aPos[i+1]++
		}
		if e.Op != Delete {
			bPos[i+1]++
		}
	}

	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", from, to)
	for first := 0; first < len(changes); {
		// A hunk takes in the next change while the unchanged lines between
		// them are no more than the context both would print anyway.
		last := first
		for last+1 < len(changes) && changes[last+1]-changes[last]-1 <= 2*context {
			last++
		}
		start := max(changes[first]-context, 0)
		end := min(changes[last]+context+1, len(edits))
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(aPos[start], aPos[end]), hunkRange(bPos[start], bPos[end]))
		for _, e := range edits[start:end] {
			switch e.Op {
			case Equal:
				out.WriteByte(' ')
			case Delete:
				out.WriteByte('-')
			case Insert:
				out.WriteByte('+')
			}
			out.WriteString(e.Line)
			out.WriteByte('\n')
		}
		first = last + 1
	}
	return out.String()
}

// hunkRange formats the lines [start, stop) (counted from 0) of one side of a
// hunk: the first line counted from 1 and the count, which is left out when it
// is 1; an empty range names the line before it, as diff -u does.
func hunkRange(start, stop int) string {
	switch n := stop - start; n {
	case 1:
		return fmt.Sprintf("%d", start+1)
	case 0:
		return fmt.Sprintf("%d,0", start)
	default:
		return fmt.Sprintf("%d,%d", start+1, n)
	}
}
