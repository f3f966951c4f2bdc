// Package linediff computes a shortest line-based edit script between two
// texts and formats it as a unified diff, as diff -u does.
//
// The edit script comes from Myers' O(ND) algorithm in its linear-space form
// (the "middle snake" bisection), so that two large, completely different
// texts cost memory proportional to their length rather than to the square of
// the number of differences.
package linediff

// Op says what an Edit does with its line.
type Op int

const (
	// Equal keeps a line that both texts have.
	Equal Op = iota
	// Delete removes a line of the old text.
	Delete
	// Insert adds a line of the new text.
	Insert
)

// Edit is one line of an edit script.
type Edit struct {
	// Op is what happens to the line.
	Op Op
	// Line is the text of the line, without a line break.
	Line string
}

// Lines returns a shortest edit script that turns a into b. Within each run of
// changed lines the deletions come before the insertions, as diff prints them.
func Lines(a, b []string) []Edit {
	ids := make(map[string]int, len(a)+len(b))
	intern := func(lines []string) []int {
		out := make([]int, len(lines))
		for i, l := range lines {
			id, ok := ids[l]
			if !ok {
				id = len(ids)
				ids[l] = id
			}
			out[i] = id
		}
		return out
	}
	d := &differ{a: intern(a), b: intern(b)}
	d.compare(0, len(a), 0, len(b))

	edits := make([]Edit, 0, len(a)+len(b))
	ai, bi := 0, 0
	for i := 0; i < len(d.runs); {
		if d.runs[i].op == Equal {
			for range d.runs[i].n {
				edits = append(edits, Edit{Op: Equal, Line: a[ai]})
				ai++
				bi++
			}
			i++
			continue
		}
		// Gather the whole block of changes so that its deletions can be
		// printed first, whatever order the bisection found them in.
		dels, ins := 0, 0
		for ; i < len(d.runs) && d.runs[i].op != Equal; i++ {
			if d.runs[i].op == Delete {
				dels += d.runs[i].n
			} else {
				ins += d.runs[i].n
			}
		}
		for range dels {
			edits = append(edits, Edit{Op: Delete, Line: a[ai]})
			ai++
		}
		for range ins {
			edits = append(edits, Edit{Op: Insert, Line: b[bi]})
			bi++
		}
	}
	return edits
}

// run is n consecutive edits of the same kind.
type run struct {
	op Op
	n  int
}

// differ holds the interned lines of both texts and the edit script built so far.
type differ struct {
	a, b []int
	runs []run
}

func (d *differ) emit(op Op, n int) {
	if n == 0 {
		return
	}
	if last := len(d.runs) - 1; last >= 0 && d.runs[last].op == op {
		d.runs[last].n += n
		return
	}
	d.runs = append(d.runs, run{op: op, n: n})
}

// compare appends a shortest edit script for a[aLo:aHi] → b[bLo:bHi].
func (d *differ) compare(aLo, aHi, bLo, bHi int) {
	prefix := 0
	for aLo+prefix < aHi && bLo+prefix < bHi && d.a[aLo+prefix] == d.b[bLo+prefix] {
		prefix++
	}
	d.emit(Equal, prefix)
	aLo += prefix
	bLo += prefix
	suffix := 0
	for aLo < aHi-suffix && bLo < bHi-suffix && d.a[aHi-suffix-1] == d.b[bHi-suffix-1] {
		suffix++
	}
	aHi -= suffix
	bHi -= suffix

	switch {
	case aLo == aHi:
		d.emit(Insert, bHi-bLo)
	case bLo == bHi:
		d.emit(Delete, aHi-aLo)
	default:
		x, y, ok := d.middle(aLo, aHi, bLo, bHi)
		// A split at either corner would not make the problem smaller; the
		// bisection never returns one, but a wrong diff beats endless recursion.
		if !ok || (x == aLo && y == bLo) || (x == aHi && y == bHi) {
			d.emit(Delete, aHi-aLo)
			d.emit(Insert, bHi-bLo)
		} else {
			d.compare(aLo, x, bLo, y)
			d.compare(x, aHi, y, bHi)
		}
	}
	d.emit(Equal, suffix)
}

// middle finds a point (x, y) on a shortest edit path through a[aLo:aHi] →
// b[bLo:bHi] by running Myers' search from both corners until the paths meet.
// It reports false when the texts have nothing in common, in which case
// deleting everything and inserting everything is the shortest script.
func (d *differ) middle(aLo, aHi, bLo, bHi int) (x, y int, ok bool) {
	n, m := aHi-aLo, bHi-bLo
	maxD := (n + m + 1) / 2
	offset := maxD + 1
	size := 2*maxD + 3
	// fwd[offset+k] is the furthest x on diagonal k (x-y = k) of the forward
	// search; rev[offset+k] the same for the search from the end, in
	// coordinates mirrored so that it also starts at (0, 0).
	fwd := make([]int, size)
	rev := make([]int, size)
	for i := range fwd {
		fwd[i] = -1
		rev[i] = -1
	}
	fwd[offset+1] = 0
	rev[offset+1] = 0
	delta := n - m
	// With an odd delta the paths meet during a forward step, otherwise
	// during a reverse step.
	front := delta%2 != 0
	// Diagonals that left the grid are not extended again.
	kFwdStart, kFwdEnd, kRevStart, kRevEnd := 0, 0, 0, 0
	for dd := 0; dd < maxD; dd++ {
		for k := -dd + kFwdStart; k <= dd-kFwdEnd; k += 2 {
			i := offset + k
			var x1 int
			if k == -dd || (k != dd && fwd[i-1] < fwd[i+1]) {
				x1 = fwd[i+1]
			} else {
				x1 = fwd[i-1] + 1
			}
			y1 := x1 - k
			for x1 < n && y1 < m && d.a[aLo+x1] == d.b[bLo+y1] {
				x1++
				y1++
			}
			fwd[i] = x1
			switch {
			case x1 > n:
				kFwdEnd += 2
			case y1 > m:
				kFwdStart += 2
			case front:
				j := offset + delta - k
				if j >= 0 && j < size && rev[j] != -1 && x1 >= n-rev[j] {
					return aLo + x1, bLo + y1, true
				}
			}
		}
		for k := -dd + kRevStart; k <= dd-kRevEnd; k += 2 {
			i := offset + k
			var x2 int
			if k == -dd || (k != dd && rev[i-1] < rev[i+1]) {
				x2 = rev[i+1]
			} else {
				x2 = rev[i-1] + 1
			}
			y2 := x2 - k
			for x2 < n && y2 < m && d.a[aHi-x2-1] == d.b[bHi-y2-1] {
				x2++
				y2++
			}
			rev[i] = x2
			switch {
			case x2 > n:
				kRevEnd += 2
			case y2 > m:
				kRevStart += 2
			case !front:
				j := offset + delta - k
				if j >= 0 && j < size && fwd[j] != -1 {
					x1 := fwd[j]
					y1 := x1 - (j - offset)
					if x1 >= n-x2 {
						return aLo + x1, bLo + y1, true
					}
				}
			}
		}
	}
	return 0, 0, false
}
