package engine

import (
	"slices"
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

// With status.conditions the gateway writes observedGeneration and a
// Reconciled condition: a status schema without room for them (or for a
// field of the condition) is known when the CRD is read, so the operator
// can be refused rather than write what the API server drops, every pass.
func TestStatusSchemaKnowsWhichOfTheGatewaysFieldsItPrunes(t *testing.T) {
	str, integer := map[string]any{"type": "string"}, map[string]any{"type": "integer"}
	condition := map[string]any{"type": "object", "properties": map[string]any{
		"type": str, "status": str, "observedGeneration": integer, "lastTransitionTime": str, "reason": str, "message": str}}
	for _, tc := range []struct {
		name   string
		status map[string]any
		want   []string
	}{
		{"room for both", map[string]any{"type": "object", "properties": map[string]any{
			"observedGeneration": integer, "conditions": map[string]any{"type": "array", "items": condition}}}, nil},
		{"anything goes", map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}, nil},
		{"no room for either", map[string]any{"type": "object", "properties": map[string]any{"message": str}},
			[]string{"status.conditions", "status.observedGeneration"}},
		{"a condition without its observedGeneration", map[string]any{"type": "object", "properties": map[string]any{
			"observedGeneration": integer, "conditions": map[string]any{"type": "array", "items": map[string]any{
				"type": "object", "properties": map[string]any{"type": str, "status": str, "lastTransitionTime": str, "reason": str, "message": str}}}}},
			[]string{"status.conditions[0].observedGeneration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crd := crdWithStatus("a", 1)
			versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
			_ = unstructured.SetNestedField(versions[0].(map[string]any), tc.status, "schema", "openAPIV3Schema", "properties", "status")
			_ = unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions")
			s := &statusSchema{version: "v1"}
			if _, err := s.update(crd); err != nil {
				t.Fatal(err)
			}
			if got := s.gatewayPruned(); !slices.Equal(got, tc.want) {
				t.Errorf("pruned %v, want %v", got, tc.want)
			}
		})
	}
}
