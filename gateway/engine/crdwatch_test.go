package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// crdWithStatus is the Gizmo CRD (UID uid, at generation) whose status
// schema has fields.
func crdWithStatus(uid types.UID, generation int64, fields ...string) *unstructured.Unstructured {
	props := map[string]any{}
	for _, f := range fields {
		props[f] = map[string]any{"type": "string"}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "gizmos.example.com", "uid": string(uid), "generation": generation},
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

func TestStatusSchemaFollowsTheCRDsGenerationAndIdentity(t *testing.T) {
	s := &statusSchema{version: "v1"}
	patch := map[string]any{"known": "k", "extra": "e"}
	steps := []struct {
		name        string
		crd         *unstructured.Unstructured
		wantChanged bool
		wantPruned  int
	}{
		{"first seen", crdWithStatus("a", 1, "known"), true, 1},
		{"same generation", crdWithStatus("a", 1, "known", "extra"), false, 1}, // nothing to rebuild
		// Deleted and created again: another CRD, at generation 1 again.
		{"re-created", crdWithStatus("b", 1, "known", "extra"), true, 0},
		{"next generation", crdWithStatus("b", 2, "known"), true, 1},
	}
	for _, st := range steps {
		changed, err := s.update(st.crd)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if changed != st.wantChanged {
			t.Errorf("%s: changed = %v, want %v", st.name, changed, st.wantChanged)
		}
		_, pruned, err := s.current().Check(nil, patch)
		if err != nil {
			t.Fatalf("%s: check: %v", st.name, err)
		}
		if len(pruned) != st.wantPruned {
			t.Errorf("%s: pruned = %v, want %d field(s)", st.name, pruned, st.wantPruned)
		}
	}
	if _, err := s.update(crdWithStatus("b", 3)); err != nil {
		t.Fatal(err)
	}
	bad := crdWithStatus("b", 4)
	_ = unstructured.SetNestedSlice(bad.Object, []any{}, "spec", "versions")
	if _, err := s.update(bad); err == nil {
		t.Error("a CRD without the watched version was accepted")
	}
	if changed, _ := s.update(crdWithStatus("b", 3)); changed {
		t.Error("an unusable CRD replaced the checker")
	}
}
