package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func crdWithStatus(generation int64, fields ...string) *unstructured.Unstructured {
	props := map[string]any{}
	for _, f := range fields {
		props[f] = map[string]any{"type": "string"}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "gizmos.example.com", "generation": generation},
		"spec": map[string]any{
			"group": "example.com", "scope": "Namespaced",
			"names": map[string]any{"kind": "Gizmo", "plural": "gizmos"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"subresources": map[string]any{"status": map[string]any{}},
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"status": map[string]any{"type": "object", "properties": props},
					},
				}},
			}},
		},
	}}
	return u
}

func TestStatusSchemaFollowsTheCRDsGeneration(t *testing.T) {
	s := &statusSchema{version: "v1"}
	patch := map[string]any{"known": "k", "extra": "e"}
	steps := []struct {
		crd         *unstructured.Unstructured
		wantChanged bool
		wantPruned  int
	}{
		{crdWithStatus(1, "known"), true, 1},
		{crdWithStatus(1, "known", "extra"), false, 1}, // same generation: nothing to rebuild
		{crdWithStatus(2, "known", "extra"), true, 0},
	}
	for i, st := range steps {
		changed, err := s.update(st.crd)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if changed != st.wantChanged {
			t.Errorf("step %d: changed = %v, want %v", i, changed, st.wantChanged)
		}
		_, pruned, err := s.Check(nil, patch)
		if err != nil {
			t.Fatalf("step %d: check: %v", i, err)
		}
		if len(pruned) != st.wantPruned {
			t.Errorf("step %d: pruned = %v, want %d field(s)", i, pruned, st.wantPruned)
		}
	}
	if _, err := s.update(crdWithStatus(3)); err != nil {
		t.Fatal(err)
	}
	bad := crdWithStatus(4)
	_ = unstructured.SetNestedSlice(bad.Object, []any{}, "spec", "versions")
	if _, err := s.update(bad); err == nil {
		t.Error("a CRD without the watched version was accepted")
	}
	if s.checker.Load() == nil || s.generation.Load() != 3 {
		t.Errorf("an unusable CRD replaced the checker (generation %d)", s.generation.Load())
	}
}
