package history

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestPlan(t *testing.T) {
	sum := func(rev, bytes int64, owner types.UID) *Summary {
		return &Summary{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d", rev)}, ConfigSetName: "app", Revision: rev, OwnerUID: owner, Bytes: bytes}
	}
	// newest first, as the index returns them
	history := func(owner types.UID, bytes int64, from, to int64) []*Summary {
		var out []*Summary
		for r := to; r >= from; r-- {
			out = append(out, sum(r, bytes, owner))
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		maxBytes    int64
		cs          Subject
		sums        []*Summary
		wantDrop    string
		wantByBytes int
	}{
		{"within both limits", 1000, Subject{UID: "u", CurrentRevision: 5, Limit: 10}, history("u", 100, 1, 5), "[]", 0},
		{"over the count limit", 1000, Subject{UID: "u", CurrentRevision: 5, Limit: 3}, history("u", 100, 1, 5), "[2 1]", 0},
		{"over the byte budget", 350, Subject{UID: "u", CurrentRevision: 5, Limit: 10}, history("u", 100, 1, 5), "[2 1]", 2},
		{"both: count first", 250, Subject{UID: "u", CurrentRevision: 5, Limit: 4}, history("u", 100, 1, 5), "[3 2 1]", 2},
		{"the current revision alone over the budget stays", 50, Subject{UID: "u", CurrentRevision: 5, Limit: 10}, history("u", 100, 4, 5), "[4]", 1},
		{"limit 0 keeps the current one", 1000, Subject{UID: "u", CurrentRevision: 3, Limit: 0}, history("u", 1, 1, 3), "[2 1]", 0},
		{"an earlier ConfigSet's revisions go", 1000, Subject{UID: "u", CurrentRevision: 2, Limit: 10},
			append(history("u", 1, 1, 2), sum(7, 1, "old")), "[7]", 0},
		{"revisions newer than the caller knows stay and count for nothing", 150, Subject{UID: "u", CurrentRevision: 3, Limit: 10},
			history("u", 100, 1, 4), "[2 1]", 2},
		{"a gap in history", 1000, Subject{UID: "u", CurrentRevision: 9, Limit: 3},
			[]*Summary{sum(9, 1, "u"), sum(5, 1, "u"), sum(4, 1, "u")}, "[5 4]", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &History{maxBytes: tc.maxBytes}
			drop, reasons := h.plan(tc.cs, tc.sums)
			byBytes := 0
			for _, r := range reasons {
				if r == pruneBytes {
					byBytes++
				}
			}
			var got []int64
			for _, s := range drop {
				got = append(got, s.Revision)
			}
			if fmt.Sprint(got) != tc.wantDrop && !(len(got) == 0 && tc.wantDrop == "[]") {
				t.Errorf("dropped %v, want %s", got, tc.wantDrop)
			}
			if byBytes != tc.wantByBytes {
				t.Errorf("%d dropped for bytes, want %d", byBytes, tc.wantByBytes)
			}
		})
	}
}
