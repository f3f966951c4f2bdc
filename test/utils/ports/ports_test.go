package ports

import "testing"

func TestFreeNDistinct(t *testing.T) {
	got, err := FreeN(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range got {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 5 distinct positive ports", got)
		}
		seen[p] = true
	}
}
