package check

import (
	"fmt"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/kube-openapi/pkg/validation/validate"

	"github.com/opgate/opgate/gateway/failure"
)

// This file keeps the status checker as it was when it called the API
// server's defaulting and validation packages: the oracle the differential
// and fuzz tests compare StatusChecker with. Test binaries may import those
// packages; the gateway must not (see cmd/gateway's import test).

// Validate lets the checker's validator be used where the server's code
// takes a validator, so tests can run both through the server's
// ValidateCustomResource.
func (v *prebuiltValidator) Validate(obj any, _ ...apiservervalidation.ValidationOption) *validate.Result {
	return v.schema.Validate(obj)
}

// serverChecker is StatusChecker built from the API server's packages.
type serverChecker struct {
	structural      *structuralschema.Structural
	statusValidator apiservervalidation.SchemaValidator
	statusDefaults  bool
	preserveUnknown bool
}

func newServerChecker(crd *apiextensionsv1.CustomResourceDefinition, version string) (*serverChecker, error) {
	var v *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == version {
			v = &crd.Spec.Versions[i]
		}
	}
	if v == nil || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("no schema for version %q", version)
	}
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
		return nil, err
	}
	s, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, err
	}
	s = s.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(s); err != nil {
		return nil, fmt.Errorf("prune defaults: %w", err)
	}
	c := &serverChecker{structural: s, preserveUnknown: crd.Spec.PreserveUnknownFields}
	if statusProps, ok := internal.Properties["status"]; ok {
		validator, _, err := apiservervalidation.NewSchemaValidatorForVersion(&statusProps, everyServer)
		if err != nil {
			return nil, fmt.Errorf("status validator: %w", err)
		}
		c.statusValidator = validator
		status := s.Properties["status"]
		c.statusDefaults = hasDefaults(&status)
	}
	return c, nil
}

// Check is StatusChecker.Check as it was, with the field errors returned
// too so that tests can compare them one by one.
func (c *serverChecker) Check(current, patch map[string]any) (map[string]any, []string, field.ErrorList, error) {
	merged, err := mergePatch(current, patch)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("check status: %w", err)
	}
	if merged == nil {
		merged = map[string]any{}
	}
	obj := map[string]any{"status": merged}
	var pruned []string
	if !c.preserveUnknown {
		pruned = structuralpruning.PruneWithOptions(obj, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
		structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, c.structural)
	}
	merged, _ = obj["status"].(map[string]any)
	if merged == nil {
		merged = map[string]any{}
	}
	if c.statusValidator == nil {
		return merged, pruned, nil, nil
	}
	validated := any(merged)
	if c.statusDefaults {
		defaulted := map[string]any{"status": runtime.DeepCopyJSON(merged)}
		structuraldefaulting.Default(defaulted, c.structural)
		validated = defaulted["status"]
	}
	var errs field.ErrorList
	if current == nil {
		errs = apiservervalidation.ValidateCustomResource(field.NewPath("status"), validated, c.statusValidator)
	} else {
		// A status update, ratcheted as the server's status strategy does.
		old := any(current)
		if c.statusDefaults {
			defaulted := map[string]any{"status": runtime.DeepCopyJSON(current)}
			structuraldefaulting.Default(defaulted, c.structural)
			old = defaulted["status"]
		}
		errs = apiservervalidation.ValidateCustomResourceUpdate(field.NewPath("status"), validated, old, c.statusValidator, apiservervalidation.WithRatcheting(nil))
	}
	if len(errs) > 0 {
		return merged, pruned, errs, failure.Permanentf(ReasonInvalidStatus, "status refused by the CRD schema: %s", joinFieldErrors(errs))
	}
	return merged, pruned, nil, nil
}

// everyServer is the compatibility version whose checks every API server
// makes: the checker holds to it (see supportedStringFormats).
var everyServer = version.MajorMinor(1, 0)
