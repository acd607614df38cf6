package check

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
)

// nestedDefaultsCRD has defaults only deep in status: in a list's items and
// in a map's values, each making a required field present.
const nestedDefaultsCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: deep.example.com}
spec:
  group: example.com
  names: {kind: Deep, plural: deep}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          status:
            type: object
            properties:
              list:
                type: array
                items:
                  type: object
                  required: [state]
                  properties:
                    name: {type: string}
                    state: {type: string, default: Unknown}
              byName:
                type: object
                additionalProperties:
                  type: object
                  required: [ready]
                  properties:
                    ready: {type: boolean, default: false}
`

// A required field whose default sits deep in the status schema is not
// missing: the status is defaulted before it is validated.
func TestStatusCheckerDefaultsNestedFieldsBeforeValidating(t *testing.T) {
	c := newChecker(t, nestedDefaultsCRD)
	if !c.statusDefaults {
		t.Fatal("the checker finds no default in a status schema with two")
	}
	patch := map[string]any{"list": []any{map[string]any{"name": "a"}}, "byName": map[string]any{"x": map[string]any{}}}
	merged, _, err := c.Check(nil, patch)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	// The server adds defaults itself; the merged status is not defaulted.
	want := map[string]any{"list": []any{map[string]any{"name": "a"}}, "byName": map[string]any{"x": map[string]any{}}}
	if !reflect.DeepEqual(merged, want) {
		t.Errorf("merged = %#v, want %#v", merged, want)
	}
	if c := newChecker(t, noStatusCRD); c.statusDefaults {
		t.Error("a CRD without a status schema has status defaults")
	}
}

// The checker's validator, built once, judges a status as the API server's
// own validator for the same schema does.
func TestStatusValidatorAgreesWithTheServers(t *testing.T) {
	crd := parseCRD(t, memcachedCRD)
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, internal, nil); err != nil {
		t.Fatal(err)
	}
	props := internal.Properties["status"]
	server, _, err := apiservervalidation.NewSchemaValidatorForVersion(&props, everyServer)
	if err != nil {
		t.Fatal(err)
	}
	ours := newChecker(t, memcachedCRD).statusValidator
	for _, status := range []map[string]any{
		{"phase": "Ready"},
		{"phase": "Broken", "replicas": int64(11), "observed": map[string]any{}},
		{"nodes": []any{"a", int64(1)}, "replicas": -1.5},
		{},
	} {
		path := field.NewPath("status")
		want := apiservervalidation.ValidateCustomResource(path, status, server)
		got := apiservervalidation.ValidateCustomResource(path, status, ours)
		if !reflect.DeepEqual(sortedErrors(got), sortedErrors(want)) {
			t.Errorf("status %v: ours say %v, the server's %v", status, got, want)
		}
	}
}

func sortedErrors(errs field.ErrorList) string { return joinFieldErrors(errs) }
