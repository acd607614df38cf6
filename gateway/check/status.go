package check

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"

	"github.com/opgate/opgate/gateway/failure"
)

// ReasonInvalidStatus is the failure reason of a status the schema refuses.
const ReasonInvalidStatus = "InvalidStatus"

// NoStatusError refuses a status for a kind without the status
// subresource: it keeps none, so no write of it could ever succeed. known
// says how that is known (discovery, or offline).
func NoStatusError(kind, known string) error {
	return failure.Permanentf(ReasonInvalidStatus, "a %s keeps no status (%s): answer none for this kind", kind, known)
}

// StatusChecker checks handler status patches against one version of a
// CRD's openAPIV3Schema as the API server does, so that what it accepts is
// what the server will store. Pruning is the server's own code; the schema
// conversion for the validator, the defaulting and the wording of errors
// are written in this package (the server's packages for them bring CEL
// and feature gates, several MiB of memory) and held equal to the server's
// by differential and fuzz tests against the apiextensions-apiserver code.
// It never refuses what the server stores; it leaves to the server what the
// server alone checks: CEL rules, list-type uniqueness, embedded resources'
// metadata, formats newer servers know (docs/contract.md).
// It is safe for concurrent use: Check only reads it.
type StatusChecker struct {
	// structural is the whole object's schema, pruning starts at the root
	// exactly as the server does.
	structural *structuralschema.Structural
	// statusValidator validates .status alone, as the server does for the
	// status subresource; nil when the schema says nothing about status.
	statusValidator *prebuiltValidator
	// statusDefaults: the status schema has a default somewhere, so a
	// status is defaulted (on a copy) before it is validated.
	statusDefaults bool
	// preserveUnknown is the legacy spec.preserveUnknownFields: no pruning.
	preserveUnknown bool
	hasSubresource  bool
}

// NewStatusChecker builds the checker for the named version of crd.
func NewStatusChecker(crd *apiextensionsv1.CustomResourceDefinition, version string) (*StatusChecker, error) {
	if crd == nil {
		return nil, fmt.Errorf("status checker: CRD is nil")
	}
	var v *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == version {
			v = &crd.Spec.Versions[i]
			break
		}
	}
	if v == nil {
		return nil, fmt.Errorf("status checker: CRD %s has no version %q", crd.Name, version)
	}
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("status checker: CRD %s version %s has no openAPIV3Schema", crd.Name, version)
	}

	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
		return nil, fmt.Errorf("status checker: convert schema of %s/%s: %w", crd.Name, version, err)
	}
	s, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, fmt.Errorf("status checker: schema of %s/%s is not structural: %w", crd.Name, version, err)
	}
	// Like the server: drop defaults that pruning would remove, so
	// defaulting never adds a field the schema does not know.
	s = s.DeepCopy()
	if err := pruneDefaults(s); err != nil {
		return nil, fmt.Errorf("status checker: prune defaults of %s/%s: %w", crd.Name, version, err)
	}

	c := &StatusChecker{
		structural:      s,
		preserveUnknown: crd.Spec.PreserveUnknownFields,
		hasSubresource:  v.Subresources != nil && v.Subresources.Status != nil,
	}
	if statusProps, ok := internal.Properties["status"]; ok {
		openapi, err := toOpenAPISchema(&statusProps)
		if err != nil {
			return nil, fmt.Errorf("status checker: status validator of %s/%s: %w", crd.Name, version, err)
		}
		c.statusValidator = &prebuiltValidator{validate.NewSchemaValidator(openapi, nil, "", strfmt.Default)}
		status := s.Properties["status"]
		c.statusDefaults = hasDefaults(&status)
	}
	return c, nil
}

// HasStatusSubresource says whether status must be written through the
// status subresource. When false the server stores status with the object
// itself, so the apply package merge-patches the object. It is deliberately
// not false when the schema merely lacks a status property: with the
// subresource present the server ignores status in object writes, and Check
// already reports such a status as pruned.
func (c *StatusChecker) HasStatusSubresource() bool { return c.hasSubresource }

// Check applies patch (a JSON merge patch, RFC 7386: null deletes) to the
// current status and checks the result as the server would.
//
// merged is the status the server would store, pruned of unknown fields but
// without the schema's defaults (the server adds those itself). pruned lists
// the path of every field pruning dropped (e.g. "status.nodez"), sorted, so
// the caller can say so in a Warning Event instead of losing it silently.
// err is a permanent InvalidStatus failure listing every schema violation
// with its path; merged and pruned are returned with it for reporting, but
// must not be applied. Neither current nor patch is modified.
func (c *StatusChecker) Check(current map[string]any, patch map[string]any) (map[string]any, []string, error) {
	merged, err := mergePatch(current, patch)
	if err != nil {
		// The handler sent it, but it arrived as JSON; failing to encode it
		// again is a bug on our side, not the handler's.
		return nil, nil, fmt.Errorf("check status: %w", err)
	}
	if merged == nil {
		merged = map[string]any{} // neither a current status nor a patch
	}

	obj := map[string]any{"status": merged}
	var pruned []string
	if !c.preserveUnknown {
		pruned = structuralpruning.PruneWithOptions(obj, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
		pruneNullsWithoutDefaults(obj, c.structural)
	}
	// Pruning with a schema that has no status property deletes the key.
	merged, _ = obj["status"].(map[string]any)
	if merged == nil {
		merged = map[string]any{}
	}

	if c.statusValidator == nil {
		return merged, pruned, nil
	}
	// Validate a defaulted copy, as the server defaults before it
	// validates: a required field with a default is not missing. Without
	// a default in the schema, defaulting changes nothing: no copy.
	validated := c.defaulted(merged)
	errs := validateValue(field.NewPath("status"), validated, c.statusValidator.schema)
	if len(errs) > 0 && current != nil {
		// As the server validates a status update: values left as they
		// were are not checked again (ratchet.go).
		status := c.structural.Properties["status"]
		errs = ratchet(&status, errs, validated, c.defaulted(current))
	}
	if len(errs) > 0 {
		return merged, pruned, failure.Permanentf(ReasonInvalidStatus, "status refused by the CRD schema: %s", joinFieldErrors(errs))
	}
	return merged, pruned, nil
}

// defaulted is status with the schema's defaults, as the server defaults
// before it validates (a required field with a default is not missing): a
// copy when the schema has defaults, status itself otherwise.
func (c *StatusChecker) defaulted(status map[string]any) any {
	if !c.statusDefaults {
		return status
	}
	defaulted := map[string]any{"status": runtime.DeepCopyJSON(status)}
	applyDefaults(defaulted, c.structural)
	return defaulted["status"]
}

// prebuiltValidator validates with one schema validator built with the
// checker. The API server's own (with CRD validation ratcheting on, the
// default) builds a validator per Validate, to serve updates that ratchet;
// a status check is a create-style validation, where both validate alike,
// and the server itself shares one such validator across requests when
// ratcheting is off.
type prebuiltValidator struct{ schema *validate.SchemaValidator }

// hasDefaults says whether s or anything under it has a default.
func hasDefaults(s *structuralschema.Structural) bool {
	if s == nil {
		return false
	}
	if s.Default.Object != nil || hasDefaults(s.Items) {
		return true
	}
	if s.AdditionalProperties != nil && hasDefaults(s.AdditionalProperties.Structural) {
		return true
	}
	for _, p := range s.Properties {
		if hasDefaults(&p) {
			return true
		}
	}
	return false
}

func joinFieldErrors(errs field.ErrorList) string {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	// The validator walks maps in random order; a stable message lets
	// repeated Warning Events with the same cause be aggregated.
	sort.Strings(msgs)
	return strings.Join(msgs, "; ")
}
