package check

import (
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// tightenedCRD is a schema tightened after statuses were stored: the
// stored replicas 11 and mode "C" no longer validate.
const tightenedCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.opgate.dev}
spec:
  group: test.opgate.dev
  names: {kind: Widget, plural: widgets}
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
              phase: {type: string}
              replicas: {type: integer, maximum: 10}
              mode: {type: string, enum: [A, B]}
              items: {type: array, items: {type: string, maxLength: 3}}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type]
                  properties:
                    type: {type: string}
                    reason: {type: string, maxLength: 3}
`

// A status stored before its schema was tightened does not make every
// later status refused: as the API server ratchets status updates (CRD
// validation ratcheting, on by default since 1.30), a value left as it
// was is not checked again; a changed or new one is.
func TestStatusCheckRatchetsValuesLeftAsTheyWere(t *testing.T) {
	c := newChecker(t, tightenedCRD)
	server := serverRatchetingValidator(t, tightenedCRD)
	stored := map[string]any{"replicas": int64(11), "mode": "C", "items": []any{"long one"},
		"conditions": []any{map[string]any{"type": "Ready", "reason": "Stored"}}}
	condition := func(typ, reason string) map[string]any { return map[string]any{"type": typ, "reason": reason} }
	for _, tc := range []struct {
		name    string
		patch   map[string]any
		refused []string
	}{
		{"another field changes", map[string]any{"phase": "Ready"}, nil},
		{"nothing changes", map[string]any{}, nil},
		{"the invalid value changes to another invalid one", map[string]any{"replicas": int64(12)}, []string{"status.replicas"}},
		{"the invalid value is fixed, another stays", map[string]any{"replicas": int64(3)}, nil},
		{"a new invalid value next to the old ones", map[string]any{"mode": "D"}, []string{"status.mode"}},
		{"a list changes", map[string]any{"items": []any{"long one", "longer"}}, []string{"status.items[0]", "status.items[1]"}},
		{"a map list gets an item, the old one stays", map[string]any{"conditions": []any{condition("Synced", "Ok"), condition("Ready", "Stored")}}, nil},
		{"a map list's old item changes", map[string]any{"conditions": []any{condition("Ready", "Changed")}}, []string{"status.conditions[0].reason"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			merged, _, err := c.Check(stored, tc.patch)
			if tc.refused == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else {
				assertInvalidStatus(t, err, tc.refused)
			}
			errs := server(merged, stored)
			if (len(errs) == 0) != (err == nil) {
				t.Errorf("the API server's ratcheting validation says %v; Check says %v", errs, err)
			}
		})
	}
}

// serverRatchetingValidator validates a status update with the API server's
// own code and ratcheting, as its status strategy does.
func serverRatchetingValidator(t *testing.T, doc string) func(status, old map[string]any) field.ErrorList {
	t.Helper()
	crd := parseCRD(t, doc)
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, internal, nil); err != nil {
		t.Fatal(err)
	}
	props := internal.Properties["status"]
	validator, _, err := apiservervalidation.NewSchemaValidatorForVersion(&props, everyServer)
	if err != nil {
		t.Fatal(err)
	}
	return func(status, old map[string]any) field.ErrorList {
		return apiservervalidation.ValidateCustomResourceUpdate(field.NewPath("status"), status, old, validator, apiservervalidation.WithRatcheting(nil))
	}
}
