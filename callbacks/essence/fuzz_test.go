package essence

import (
	"encoding/json"
	"reflect"
	"sort"
	"testing"

	"github.com/opgate/opgate/callbacks"
)

// FuzzDiff: for any two objects the diff does not panic, is empty between
// an object and itself, is sorted by path, and read backwards is the
// diff of the swapped pair (each add a remove, each change a change), so
// that when.fields sees the same paths whichever way an object moves.
func FuzzDiff(f *testing.F) {
	f.Add([]byte(`{"spec":{"size":3}}`), []byte(`{"spec":{"size":5}}`))
	f.Add([]byte(`{"spec":{"a":null,"l":[1,2]}}`), []byte(`{"spec":{"a":1,"l":[1]},"metadata":{"labels":{"x.y/z":"1"}}}`))
	f.Fuzz(func(t *testing.T, before, after []byte) {
		var a, b map[string]any
		if json.Unmarshal(before, &a) != nil || json.Unmarshal(after, &b) != nil {
			return
		}
		if d := Diff(a, a); len(d) != 0 {
			t.Fatalf("Diff(x, x) = %v, want nothing", d)
		}
		fwd, back := Diff(a, b), Diff(b, a)
		if !sort.SliceIsSorted(fwd, func(i, j int) bool { return fwd[i].Path < fwd[j].Path }) {
			t.Fatalf("ops not sorted by path: %v", fwd)
		}
		if !reflect.DeepEqual(fwd, Diff(a, b)) {
			t.Fatal("Diff is not deterministic")
		}
		if len(fwd) != len(back) {
			t.Fatalf("Diff(a, b) has %d ops, Diff(b, a) %d:\n%v\n%v", len(fwd), len(back), fwd, back)
		}
		swap := map[string]string{callbacks.OpAdd: callbacks.OpRemove, callbacks.OpRemove: callbacks.OpAdd, callbacks.OpChange: callbacks.OpChange}
		for i := range fwd {
			if fwd[i].Path != back[i].Path || swap[fwd[i].Op] != back[i].Op {
				t.Fatalf("op %d: %s %s forwards, %s %s backwards", i, fwd[i].Op, fwd[i].Path, back[i].Op, back[i].Path)
			}
		}
	})
}
