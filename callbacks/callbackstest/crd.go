package callbackstest

import (
	"context"
	"os"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/check"
)

// LoadCRD reads a CustomResourceDefinition file and fails the test when the
// API server would refuse it: a misspelt field, a schema that is not
// structural, a name that is not plural.group, and so on.
func LoadCRD(t testing.TB, file string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("callbackstest: %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatalf("callbackstest: %s does not decode strictly as a CRD: %v", file, err)
	}
	// Validate a defaulted copy, as the server does; return the file's.
	defaulted := crd.DeepCopy()
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(defaulted)
	var internal apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(defaulted, &internal, nil); err != nil {
		t.Fatalf("callbackstest: convert %s: %v", file, err)
	}
	// The server records the storage version on create; the file cannot.
	for _, v := range internal.Spec.Versions {
		if v.Storage {
			internal.Status.StoredVersions = append(internal.Status.StoredVersions, v.Name)
		}
	}
	if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
		t.Fatalf("callbackstest: the API server would refuse %s:\n%v", file, errs.ToAggregate())
	}
	return &crd
}

// CheckStatusAgainstCRD fails the test when the gateway would refuse the
// answered status patch against the parent's CRD (read from crdFile, for
// the request object's version), or when the API server would silently
// drop some of its fields. The patch is merged into the request object's
// status first, as the gateway does.
func (r *Result) CheckStatusAgainstCRD(crdFile string) {
	r.t.Helper()
	resp := r.response()
	crd := LoadCRD(r.t, crdFile)
	apiVersion := r.Request.Object.GetAPIVersion()
	group, version, _ := strings.Cut(apiVersion, "/")
	if group != crd.Spec.Group || r.Request.Object.GetKind() != crd.Spec.Names.Kind {
		r.t.Fatalf("callbackstest: %s is the CRD of %s %s, not of the request's %s %s",
			crdFile, crd.Spec.Group, crd.Spec.Names.Kind, apiVersion, r.Request.Object.GetKind())
	}
	checker, err := check.NewStatusChecker(crd, version)
	if err != nil {
		r.t.Fatalf("callbackstest: %v", err)
	}
	current, _ := r.Request.Object.Object["status"].(map[string]any)
	_, pruned, err := checker.Check(current, resp.Status)
	if err != nil {
		r.t.Errorf("callbackstest: the gateway would refuse the status patch: %v", err)
	}
	if len(pruned) > 0 {
		r.t.Errorf("callbackstest: the API server would drop %v from the status patch", pruned)
	}
}
