package check

import (
	"encoding/json"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	openapierrors "k8s.io/kube-openapi/pkg/validation/errors"
	"k8s.io/kube-openapi/pkg/validation/validate"
)

// validateValue validates value with v and returns the violations as the
// API server words them for a custom resource: the same error types, paths
// under path and messages.
func validateValue(path *field.Path, value any, v *validate.SchemaValidator) field.ErrorList {
	res := v.Validate(value)
	if res.IsValid() {
		return nil
	}
	var errs field.ErrorList
	for _, err := range res.Errors {
		verr, ok := err.(*openapierrors.Validation)
		if !ok {
			errs = append(errs, field.Invalid(path, "", err.Error()))
			continue
		}
		errs = append(errs, fieldError(path, verr))
	}
	return errs
}

// fieldError turns one kube-openapi violation into a field error.
func fieldError(path *field.Path, err *openapierrors.Validation) *field.Error {
	if err.Name != "" && err.Name != "." {
		path = path.Child(strings.TrimPrefix(err.Name, "."))
	}
	switch err.Code() {
	case openapierrors.RequiredFailCode:
		return field.Required(path, "")
	case openapierrors.EnumFailCode:
		values := []string{}
		for _, allowed := range err.Values {
			if s, ok := allowed.(string); ok {
				values = append(values, s)
				continue
			}
			encoded, _ := json.Marshal(allowed)
			values = append(values, string(encoded))
		}
		return field.NotSupported(path, err.Value, values)
	case openapierrors.TooLongFailCode:
		return field.TooLong(path, "", int(int64Or(err.Valid, -1)))
	case openapierrors.MaxItemsFailCode, openapierrors.TooManyPropertiesCode:
		return field.TooMany(path, int(int64Or(err.Value, -1)), int(int64Or(err.Valid, -1)))
	case openapierrors.InvalidTypeCode:
		return field.TypeInvalid(path, valueOrEmpty(err.Value), err.Error())
	default:
		return field.Invalid(path, valueOrEmpty(err.Value), err.Error())
	}
}

// int64Or is v when it is an int64, otherwise def.
func int64Or(v any, def int64) int64 {
	if i, ok := v.(int64); ok {
		return i
	}
	return def
}

// valueOrEmpty reports a missing value as "", as the server does.
func valueOrEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}
