package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestChangedBeyondTellsOthersChangesFromTheWritesOwn(t *testing.T) {
	obj := func(edit func(m map[string]any)) *unstructured.Unstructured {
		m := map[string]any{
			"apiVersion": "v1", "kind": "Thing",
			"metadata": map[string]any{"name": "a", "resourceVersion": "1", "generation": int64(1),
				"annotations": map[string]any{"team": "x"}},
			"spec":   map[string]any{"size": int64(1), "ports": []any{map[string]any{"port": int64(80)}}, "mode": "fast"},
			"status": map[string]any{"message": "old", "phase": "Ready"},
		}
		if edit != nil {
			edit(m)
		}
		return &unstructured.Unstructured{Object: m}
	}
	meta := func(m map[string]any) map[string]any { return m["metadata"].(map[string]any) }
	spec := func(m map[string]any) map[string]any { return m["spec"].(map[string]any) }
	status := func(m map[string]any) map[string]any { return m["status"].(map[string]any) }
	applied := map[string]any{"metadata": map[string]any{"name": "a"}, "spec": map[string]any{"size": int64(3), "ports": []any{}}}
	for _, tt := range []struct {
		name  string
		after func(m map[string]any)
		wrote map[string]any
		own   bool
		want  bool
	}{
		{"the status the write set", func(m map[string]any) {
			status(m)["message"] = "new"
			meta(m)["resourceVersion"] = "2"
		}, map[string]any{"status": map[string]any{"message": "new"}}, true, false},
		{"the spec edited by someone else", func(m map[string]any) {
			spec(m)["size"] = int64(3)
			meta(m)["generation"] = int64(2)
		}, map[string]any{"status": map[string]any{"message": "new"}}, true, true},
		{"a status field the write did not set", func(m map[string]any) { status(m)["phase"] = "Failed" },
			map[string]any{"status": map[string]any{"message": "new"}}, true, true},
		{"the gateway's own annotation on the parent", func(m map[string]any) {
			meta(m)["annotations"] = map[string]any{"team": "x", "opgate.dev/state.op": "{}"}
		}, map[string]any{"status": map[string]any{}}, true, false},
		{"a child's applied fields, its list whole, and the generation they move", func(m map[string]any) {
			spec(m)["size"] = int64(3)
			spec(m)["ports"] = []any{map[string]any{"port": int64(80), "protocol": "TCP"}}
			meta(m)["generation"] = int64(2)
		}, applied, false, false},
		{"a child annotated by someone else", func(m map[string]any) {
			meta(m)["annotations"] = map[string]any{"team": "x", "touched": "yes"}
		}, applied, false, true},
		{"a child's field the apply does not set", func(m map[string]any) { spec(m)["mode"] = "slow" }, applied, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := changedBeyond(obj(nil), obj(tt.after), tt.wrote, tt.own); got != tt.want {
				t.Errorf("changedBeyond = %v, want %v", got, tt.want)
			}
		})
	}
}

// The first status written to an object that had none is the write's own
// change: no empty status is left behind to tell them apart.
func TestChangedBeyondTakesAFirstStatusForTheWritesOwn(t *testing.T) {
	before := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Thing",
		"metadata": map[string]any{"name": "a", "resourceVersion": "1"},
		"spec":     map[string]any{"size": int64(1)},
	}}
	wrote := map[string]any{"status": map[string]any{"message": "synced"}}
	for _, tt := range []struct {
		name   string
		status map[string]any
		want   bool
	}{
		{"only the fields written", map[string]any{"message": "synced"}, false},
		{"a field someone else set as well", map[string]any{"message": "synced", "phase": "Ready"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			after := before.DeepCopy()
			after.Object["status"] = tt.status
			after.SetResourceVersion("2")
			if got := changedBeyond(before, after, wrote, true); got != tt.want {
				t.Errorf("changedBeyond = %v, want %v", got, tt.want)
			}
		})
	}
}
