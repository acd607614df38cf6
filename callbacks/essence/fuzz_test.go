package essence

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
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

// FuzzFieldsChanged: for any two objects and field, FieldsChanged is the
// same whichever way the object moves; it never fires where no diff op
// lies at, over or under the field (it only takes away what Diff's paths
// over-match); and it never misses a change of the value at the field read
// as nested keys, one per dotted segment (it only adds keys with dots).
// Without fields it says whether there is a diff at all.
func FuzzFieldsChanged(f *testing.F) {
	f.Add([]byte(`{"spec":{"size":3}}`), []byte(`{"spec":{"size":5}}`), "spec.size")
	f.Add([]byte(`{"metadata":{"labels":{"app.kubernetes.io/name":"a","app":"x"}}}`), []byte(`{"metadata":{"labels":{"app.kubernetes.io/name":"b","app":"x"}}}`), "metadata.labels.app")
	f.Add([]byte(`{"spec":{}}`), []byte(`{"metadata":{"labels":{"a.b":"1"}}}`), "metadata.labels.a.b")
	f.Add([]byte(`{"spec":{"a":{"b":1},"a.b":1}}`), []byte(`{"spec":{"a":{"b":2},"a.b":null}}`), "spec.a.b")
	f.Add([]byte(`{"spec":{"l":[{"x":1}]}}`), []byte(`{"spec":{"l":[{"x":2}],"s":1}}`), "spec.l.x")
	f.Fuzz(func(t *testing.T, before, after []byte, field string) {
		var a, b map[string]any
		if json.Unmarshal(before, &a) != nil || json.Unmarshal(after, &b) != nil {
			return
		}
		if got, want := FieldsChanged(a, b, nil), len(Diff(a, b)) > 0; got != want {
			t.Fatalf("FieldsChanged without fields = %v, want %v (the diff: %v)", got, want, Diff(a, b))
		}
		segments := strings.Split(field, ".")
		if slices.Contains(segments, "") {
			return // not a field when.fields takes
		}
		fields := []string{field}
		got := FieldsChanged(a, b, fields)
		if back := FieldsChanged(b, a, fields); back != got {
			t.Fatalf("FieldsChanged(a, b) = %v, FieldsChanged(b, a) = %v", got, back)
		}
		if got && !Changed(Diff(a, b), fields) {
			t.Fatalf("FieldsChanged fires %q where no diff op overlaps it: %v", field, Diff(a, b))
		}
		if nestedChanged(a, b, segments) && !got {
			t.Fatalf("FieldsChanged misses the change at %q read as nested keys", field)
		}
	})
}

// nestedChanged compares the values at a path of nested keys, a list on
// the way compared whole, with Diff as the judge of equal values.
func nestedChanged(a, b any, segments []string) bool {
	_, aIsList := a.([]any)
	_, bIsList := b.([]any)
	if len(segments) == 0 || aIsList || bIsList {
		return len(Diff(map[string]any{"v": a}, map[string]any{"v": b})) > 0
	}
	am, _ := a.(map[string]any)
	bm, _ := b.(map[string]any)
	return nestedChanged(am[segments[0]], bm[segments[0]], segments[1:])
}
