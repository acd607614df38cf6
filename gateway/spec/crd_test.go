package spec_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/spec/crdgen"
)

const crdFile = "../../crds/opgate.dev_webhookoperators.yaml"

func TestCommittedCRDIsWhatGencrdGenerates(t *testing.T) {
	committed, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	generated, err := crdgen.CRD(spec.JSONSchema())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, generated) {
		t.Fatalf("%s is out of date with gateway/spec/schema/webhookoperator.json; run: go run ./hack/gencrd > crds/opgate.dev_webhookoperators.yaml", crdFile)
	}
}

// loadCRD reads the committed CRD strictly (a misspelt keyword fails) and
// converts it to the internal version the API server validates.
func loadCRD(t *testing.T) *apiextensions.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	var v1 apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &v1); err != nil {
		t.Fatalf("CRD does not decode strictly: %v", err)
	}
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(&v1)
	var internal apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1, &internal, nil); err != nil {
		t.Fatal(err)
	}
	return &internal
}

// openAPISchema returns the schema of the CRD's only version; the internal
// version keeps a schema shared by all versions in spec.validation.
func openAPISchema(t *testing.T, crd *apiextensions.CustomResourceDefinition) *apiextensions.JSONSchemaProps {
	t.Helper()
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("want one version, got %d", len(crd.Spec.Versions))
	}
	if v := crd.Spec.Versions[0].Schema; v != nil && v.OpenAPIV3Schema != nil {
		return v.OpenAPIV3Schema
	}
	if crd.Spec.Validation == nil || crd.Spec.Validation.OpenAPIV3Schema == nil {
		t.Fatal("the CRD has no schema")
	}
	return crd.Spec.Validation.OpenAPIV3Schema
}

func TestCRDIsAcceptedByTheAPIServerValidation(t *testing.T) {
	crd := loadCRD(t)
	if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), crd); len(errs) > 0 {
		t.Errorf("the API server would refuse the CRD:\n%v", errs.ToAggregate())
	}
	s, err := structuralschema.NewStructural(openAPISchema(t, crd))
	if err != nil {
		t.Fatalf("not a structural schema: %v", err)
	}
	if errs := structuralschema.ValidateStructural(field.NewPath("openAPIV3Schema"), s); len(errs) > 0 {
		t.Errorf("not a structural schema:\n%v", errs.ToAggregate())
	}
}

// TestClusterAndFileValidationAgree reads documents the way kubectl does
// (sigs.k8s.io/yaml, YAML 1.1) and checks that the API server, with the
// CRD, and ValidateObject accept and refuse the same ones.
func TestClusterAndFileValidationAgree(t *testing.T) {
	crd := loadCRD(t)
	openAPI := openAPISchema(t, crd)
	structural, err := structuralschema.NewStructural(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	memcached, err := os.ReadFile("../../examples/operators/memcached.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nginx, err := os.ReadFile("../../examples/operators/nginx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		doc     []byte
		wantErr bool
	}{
		{"memcached example is accepted", memcached, false},
		{"nginx example is accepted", nginx, false},
		{"unknown update strategy is refused", replace(memcached, "kind: Deployment", "kind: Deployment\n      updateStrategy: Sometimes"), true},
		{"callback id that is not a DNS label is refused", replace(memcached, "id: resize", "id: Resize_Now"), true},
		{"port out of range is refused", replace(nginx, "url: http://127.0.0.1:8082", "service: {namespace: web, name: nginx, port: 70000}"), true},
		{"url and service together are refused", replace(nginx, "url: http://127.0.0.1:8082", "url: http://127.0.0.1:8082\n    service: {namespace: web, name: nginx}"), true},
		// `on` was renamed to `events`; kubectl reads a bare `on` key as the
		// boolean true. Both spellings are refused, by the CRD's CEL rule;
		// TestRenamedOnFieldIsRefusedWithItsNewName shows the message from a
		// real API server.
		{"the old on key is refused", replace(nginx, `events: [create]`, `"on": [create]`), true},
		{"a bare on key read by kubectl is refused", replace(nginx, `events: [create]`, "on: [create]"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obj map[string]any
			if err := yaml.Unmarshal(tt.doc, &obj); err != nil {
				t.Fatal(err)
			}
			// Pruning first, as the API server does; valid documents lose nothing.
			pruned := pruning.PruneWithOptions(obj, structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
			crdErrs := apiservervalidation.ValidateCustomResource(nil, obj, validator)
			if len(crdErrs) == 0 {
				// As the API server: CEL rules run on what the schema accepted.
				celErrs, _ := cel.NewValidator(structural, true, celconfig.PerCallLimit).
					Validate(context.Background(), nil, structural, obj, nil, celconfig.RuntimeCELCostBudget)
				crdErrs = append(crdErrs, celErrs...)
			}
			specErr := spec.ValidateObject(obj)
			if got := len(crdErrs) > 0; got != tt.wantErr {
				t.Errorf("API server errors = %v, want errors: %v", crdErrs, tt.wantErr)
			}
			if got := specErr != nil; got != tt.wantErr {
				t.Errorf("ValidateObject() = %v, want error: %v", specErr, tt.wantErr)
			}
			if !tt.wantErr && len(pruned) > 0 {
				t.Errorf("the API server would drop %v from a valid document", pruned)
			}
		})
	}
}

func replace(doc []byte, old, new string) []byte {
	if !bytes.Contains(doc, []byte(old)) {
		panic("test document has no " + old)
	}
	return bytes.Replace(doc, []byte(old), []byte(new), 1)
}
