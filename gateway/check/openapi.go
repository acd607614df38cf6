package check

import (
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// The schema conversion below is what the API server does before it builds
// its kube-openapi validator for a custom resource. It is written here,
// rather than called, because the server's package also holds its CEL
// environment and feature gates: imported, they cost the gateway several
// MiB of memory. The differential tests hold it equal to the server's.

// supportedStringFormats are the string formats a CRD schema may use, with
// the dashes removed as go-openapi compares them. Any other format of a
// string is dropped, so the validator ignores it, as the server does.
// These are the formats every API server checks (its compatibility
// version 1.0 on). k8s-short-name and k8s-long-name are left out: a server
// checks them only from compatibility version 1.34 on (Kubernetes 1.35),
// and checked here they would refuse, on older servers, statuses the
// server stores; on newer ones the server refuses a bad one at the write.
var supportedStringFormats = map[string]bool{
	"bsonobjectid": true, "uri": true, "email": true, "hostname": true,
	"ipv4": true, "ipv6": true, "cidr": true, "mac": true,
	"uuid": true, "uuid3": true, "uuid4": true, "uuid5": true,
	"isbn": true, "isbn10": true, "isbn13": true, "creditcard": true,
	"ssn": true, "hexcolor": true, "rgbcolor": true, "byte": true,
	"password": true, "date": true, "duration": true, "datetime": true,
}

// supportedFormat says whether format is validated for a schema of type
// typ (the only type, or "" for none or several); an unsupported format is
// dropped from the schema.
func supportedFormat(typ, format string) bool {
	switch typ {
	case "", "string":
		return supportedStringFormats[strings.ReplaceAll(format, "-", "")]
	case "integer":
		return format == "int32" || format == "int64"
	case "number":
		return format == "float" || format == "double"
	default:
		return false
	}
}

// toOpenAPISchema converts a CRD schema (internal version) to the
// kube-openapi schema its validator takes, as the API server does.
func toOpenAPISchema(in *apiextensions.JSONSchemaProps) (*spec.Schema, error) {
	out := &spec.Schema{}
	if in == nil {
		return out, nil
	}
	if err := convertSchema(in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func convertSchema(in *apiextensions.JSONSchemaProps, out *spec.Schema) error {
	convertScalars(in, out)
	var err error
	if out.AllOf, err = convertSchemaSlice(in.AllOf); err != nil {
		return err
	}
	if out.OneOf, err = convertSchemaSlice(in.OneOf); err != nil {
		return err
	}
	if out.AnyOf, err = convertSchemaSlice(in.AnyOf); err != nil {
		return err
	}
	if in.Not != nil {
		out.Not = &spec.Schema{}
		if err := convertSchema(in.Not, out.Not); err != nil {
			return err
		}
	}
	if out.Properties, err = convertSchemaMap(in.Properties); err != nil {
		return err
	}
	if out.PatternProperties, err = convertSchemaMap(in.PatternProperties); err != nil {
		return err
	}
	if out.Definitions, err = convertSchemaMap(in.Definitions); err != nil {
		return err
	}
	if in.Ref != nil {
		if out.Ref, err = spec.NewRef(*in.Ref); err != nil {
			return err
		}
	}
	if out.AdditionalProperties, err = convertSchemaOrBool(in.AdditionalProperties); err != nil {
		return err
	}
	if out.AdditionalItems, err = convertSchemaOrBool(in.AdditionalItems); err != nil {
		return err
	}
	if err := convertItems(in.Items, out); err != nil {
		return err
	}
	if err := convertDependencies(in.Dependencies, out); err != nil {
		return err
	}
	if in.ExternalDocs != nil {
		out.ExternalDocs = &spec.ExternalDocumentation{Description: in.ExternalDocs.Description, URL: in.ExternalDocs.URL}
	}
	if out.Format != "" {
		typ := ""
		if len(out.Type) == 1 {
			typ = out.Type[0]
		}
		if !supportedFormat(typ, out.Format) {
			out.Format = ""
		}
	}
	return addExtensions(in, out)
}

// convertScalars copies the fields that hold no schema.
func convertScalars(in *apiextensions.JSONSchemaProps, out *spec.Schema) {
	out.ID = in.ID
	out.Schema = spec.SchemaURL(in.Schema)
	out.Description = in.Description
	if in.Type != "" {
		out.Type = spec.StringOrArray{in.Type}
	}
	if in.XIntOrString {
		out.AddExtension("x-kubernetes-int-or-string", true)
		out.Type = spec.StringOrArray{"integer", "string"}
	}
	out.Nullable = in.Nullable
	out.Format = in.Format
	out.Title = in.Title
	out.Maximum, out.ExclusiveMaximum = in.Maximum, in.ExclusiveMaximum
	out.Minimum, out.ExclusiveMinimum = in.Minimum, in.ExclusiveMinimum
	out.MaxLength, out.MinLength = in.MaxLength, in.MinLength
	out.Pattern = in.Pattern
	out.MaxItems, out.MinItems = in.MaxItems, in.MinItems
	out.UniqueItems = in.UniqueItems
	out.MultipleOf = in.MultipleOf
	out.MaxProperties, out.MinProperties = in.MaxProperties, in.MinProperties
	out.Required = in.Required
	if in.Default != nil {
		out.Default = *in.Default
	}
	if in.Example != nil {
		out.Example = *in.Example
	}
	if in.Enum != nil {
		out.Enum = make([]any, len(in.Enum))
		for i, v := range in.Enum {
			out.Enum[i] = v
		}
	}
}

// addExtensions records the x-kubernetes-* fields as vendor extensions.
// The validator ignores them; they are kept so that the schema is the
// server's, field for field.
func addExtensions(in *apiextensions.JSONSchemaProps, out *spec.Schema) error {
	if in.XPreserveUnknownFields != nil {
		out.AddExtension("x-kubernetes-preserve-unknown-fields", *in.XPreserveUnknownFields)
	}
	if in.XEmbeddedResource {
		out.AddExtension("x-kubernetes-embedded-resource", true)
	}
	if len(in.XListMapKeys) != 0 {
		out.AddExtension("x-kubernetes-list-map-keys", anySlice(in.XListMapKeys))
	}
	if in.XListType != nil {
		out.AddExtension("x-kubernetes-list-type", *in.XListType)
	}
	if in.XMapType != nil {
		out.AddExtension("x-kubernetes-map-type", *in.XMapType)
	}
	if len(in.XValidations) != 0 {
		var rules apiextensionsv1.ValidationRules
		if err := apiextensionsv1.Convert_apiextensions_ValidationRules_To_v1_ValidationRules(&in.XValidations, &rules, nil); err != nil {
			return err
		}
		out.AddExtension("x-kubernetes-validations", anySlice(rules))
	}
	return nil
}

func anySlice[T any](in []T) []any {
	var out []any
	for _, v := range in {
		out = append(out, v)
	}
	return out
}

// convertSchemaSlice converts allOf, oneOf and anyOf; nil stays nil.
func convertSchemaSlice(in []apiextensions.JSONSchemaProps) ([]spec.Schema, error) {
	var out []spec.Schema
	for i := range in {
		var s spec.Schema
		if err := convertSchema(&in[i], &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func convertSchemaMap(in map[string]apiextensions.JSONSchemaProps) (map[string]spec.Schema, error) {
	if in == nil {
		return nil, nil
	}
	out := make(map[string]spec.Schema, len(in))
	for k, v := range in {
		var s spec.Schema
		if err := convertSchema(&v, &s); err != nil {
			return nil, err
		}
		out[k] = s
	}
	return out, nil
}

func convertSchemaOrBool(in *apiextensions.JSONSchemaPropsOrBool) (*spec.SchemaOrBool, error) {
	if in == nil {
		return nil, nil
	}
	out := &spec.SchemaOrBool{Allows: in.Allows}
	if in.Schema != nil {
		out.Schema = &spec.Schema{}
		if err := convertSchema(in.Schema, out.Schema); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func convertItems(in *apiextensions.JSONSchemaPropsOrArray, out *spec.Schema) error {
	if in == nil {
		return nil
	}
	out.Items = &spec.SchemaOrArray{}
	if in.Schema != nil {
		out.Items.Schema = &spec.Schema{}
		if err := convertSchema(in.Schema, out.Items.Schema); err != nil {
			return err
		}
	}
	if in.JSONSchemas != nil {
		out.Items.Schemas = make([]spec.Schema, len(in.JSONSchemas))
		for i := range in.JSONSchemas {
			if err := convertSchema(&in.JSONSchemas[i], &out.Items.Schemas[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func convertDependencies(in apiextensions.JSONSchemaDependencies, out *spec.Schema) error {
	if in == nil {
		return nil
	}
	out.Dependencies = make(spec.Dependencies, len(in))
	for k, v := range in {
		d := spec.SchemaOrStringArray{Property: v.Property}
		if v.Schema != nil {
			d.Schema = &spec.Schema{}
			if err := convertSchema(v.Schema, d.Schema); err != nil {
				return err
			}
		}
		out.Dependencies[k] = d
	}
	return nil
}
