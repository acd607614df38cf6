// Package crdtest checks a handler's answers against the parent's
// CustomResourceDefinition, as the gateway and the API server would. It is
// apart from callbacks/callbackstest because it needs the API server's CRD
// libraries; a handler author's tests import it only when they want this.
package crdtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/callbacks/callbackstest"
	"github.com/opgate/opgate/gateway/check"
)

// LoadCRD reads a CustomResourceDefinition file and fails the test when the
// API server would refuse it: a misspelt field, a schema that is not
// structural, a name that is not plural.group, and so on.
func LoadCRD(t testing.TB, file string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crd, err := readCRD(file)
	if err != nil {
		t.Fatalf("crdtest: %v", err)
	}
	return crd
}

func readCRD(file string) (*apiextensionsv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		return nil, fmt.Errorf("%s does not decode strictly as a CRD: %w", file, err)
	}
	// Validate a defaulted copy, as the server does; return the file's.
	defaulted := crd.DeepCopy()
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(defaulted)
	var internal apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(defaulted, &internal, nil); err != nil {
		return nil, fmt.Errorf("convert %s: %w", file, err)
	}
	// The server records the storage version on create; the file cannot.
	for _, v := range internal.Spec.Versions {
		if v.Storage {
			internal.Status.StoredVersions = append(internal.Status.StoredVersions, v.Name)
		}
	}
	if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
		return nil, fmt.Errorf("the API server would refuse %s:\n%w", file, errs.ToAggregate())
	}
	return &crd, nil
}

// CheckStatus fails the test when the gateway would refuse the status patch
// res answered against the parent's CRD (read from crdFile, for the request
// object's version), or when the API server would silently drop some of its
// fields. The patch is merged into the request object's status first, as
// the gateway does.
func CheckStatus(t testing.TB, res *callbackstest.Result, crdFile string) {
	t.Helper()
	if res.Response == nil {
		t.Fatalf("crdtest: answer %d has no valid response body: %s", res.StatusCode, res.Body)
	}
	crd, err := readCRD(crdFile)
	if err != nil {
		t.Fatalf("crdtest: %v", err)
	}
	for _, p := range statusProblems(crd, crdFile, res) {
		t.Errorf("crdtest: %s", p)
	}
}

func statusProblems(crd *apiextensionsv1.CustomResourceDefinition, crdFile string, res *callbackstest.Result) []string {
	obj := res.Request.Object
	group, version, _ := strings.Cut(obj.GetAPIVersion(), "/")
	if group != crd.Spec.Group || obj.GetKind() != crd.Spec.Names.Kind {
		return []string{fmt.Sprintf("%s is the CRD of %s %s, not of the request's %s %s",
			crdFile, crd.Spec.Group, crd.Spec.Names.Kind, obj.GetAPIVersion(), obj.GetKind())}
	}
	checker, err := check.NewStatusChecker(crd, version)
	if err != nil {
		return []string{err.Error()}
	}
	current, _ := obj.Object["status"].(map[string]any)
	_, pruned, err := checker.Check(current, res.Response.Status)
	var out []string
	if err != nil {
		out = append(out, fmt.Sprintf("the gateway would refuse the status patch: %v", err))
	}
	if len(pruned) > 0 {
		out = append(out, fmt.Sprintf("the API server would drop %v from the status patch", pruned))
	}
	return out
}
