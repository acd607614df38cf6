package crdgen

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// wrap puts a schema under spec of a minimal document schema.
func wrap(spec string, defs string) string {
	return `{"type": "object", "required": ["apiVersion", "spec"], "properties": {
	  "apiVersion": {"type": "string", "const": "x/v1"},
	  "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}, "labels": {"type": "object"}}},
	  "spec": ` + spec + `}, "$defs": {` + defs + `}}`
}

func TestOpenAPISchemaConvertsWhatStructuralSchemasCannotSay(t *testing.T) {
	tests := []struct {
		name     string
		spec     string
		defs     string
		wantSpec string
	}{
		{"$ref is inlined and keywords next to it win",
			`{"$ref": "#/$defs/d", "description": "mine"}`, `"d": {"type": "string", "description": "theirs", "pattern": "^a"}`,
			`{"type": "string", "description": "mine", "pattern": "^a"}`},
		{"additionalProperties false is dropped, pruning does its job",
			`{"type": "object", "additionalProperties": false, "properties": {"a": {"type": "integer"}}}`, ``,
			`{"type": "object", "properties": {"a": {"type": "integer"}}}`},
		{"a map keeps its value schema",
			`{"type": "object", "additionalProperties": {"type": "string"}}`, ``,
			`{"type": "object", "additionalProperties": {"type": "string"}}`},
		{"additionalProperties true preserves unknown fields",
			`{"type": "object", "additionalProperties": true}`, ``,
			`{"type": "object", "x-kubernetes-preserve-unknown-fields": true}`},
		{"const becomes a one-value enum",
			`{"type": "string", "const": "a"}`, ``,
			`{"type": "string", "enum": ["a"]}`},
		{"uniqueItems of scalars becomes a set",
			`{"type": "array", "uniqueItems": true, "items": {"$ref": "#/$defs/s"}}`, `"s": {"type": "string"}`,
			`{"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}`},
		{"base64 content becomes format byte",
			`{"type": "string", "contentEncoding": "base64"}`, ``,
			`{"type": "string", "format": "byte"}`},
		{"documentation-only keywords are dropped, kubernetes extensions kept",
			`{"type": "array", "title": "t", "$comment": "c", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"], "items": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}`, ``,
			`{"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"], "items": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}`},
		{"not with required is kept",
			`{"type": "object", "not": {"required": ["a", "b"]}}`, ``,
			`{"type": "object", "not": {"required": ["a", "b"]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OpenAPISchema([]byte(wrap(tt.spec, tt.defs)))
			if err != nil {
				t.Fatalf("OpenAPISchema() error: %v", err)
			}
			var want any
			if err := json.Unmarshal([]byte(tt.wantSpec), &want); err != nil {
				t.Fatal(err)
			}
			if spec := got["properties"].(map[string]any)["spec"]; !reflect.DeepEqual(spec, want) {
				t.Errorf("spec = %v\nwant %v", spec, want)
			}
		})
	}
}

func TestOpenAPISchemaRestrictsTheRootToWhatACRDMaySay(t *testing.T) {
	got, err := OpenAPISchema([]byte(wrap(`{"type": "object"}`, ``)))
	if err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal([]byte(`{"type": "object", "required": ["spec"], "properties": {
	  "apiVersion": {"type": "string"}, "kind": {"type": "string"},
	  "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}},
	  "spec": {"type": "object"}}}`), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(any(got), want) {
		t.Errorf("root = %v\nwant %v", got, want)
	}
}

func TestOpenAPISchemaRefusesWhatItCannotConvert(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		defs    string
		wantErr string
	}{
		{"a keyword without an equivalent", `{"oneOf": [{"type": "string"}]}`, ``, `/properties/spec/oneOf: keyword "oneOf" has no structural-schema equivalent`},
		{"a recursive schema", `{"$ref": "#/$defs/r"}`, `"r": {"type": "object", "properties": {"r": {"$ref": "#/$defs/r"}}}`, `"#/$defs/r" is recursive`},
		{"a remote reference", `{"$ref": "other.json#/x"}`, ``, `only local #/$defs/... references`},
		{"an undefined reference", `{"$ref": "#/$defs/nope"}`, ``, `"#/$defs/nope" is not defined`},
		{"several types", `{"type": ["string", "null"]}`, ``, `a CRD needs one type`},
		{"unique objects", `{"type": "array", "uniqueItems": true, "items": {"type": "object"}}`, ``, `needs scalar items`},
		{"another encoding", `{"type": "string", "contentEncoding": "base32"}`, ``, `only base64`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenAPISchema([]byte(wrap(tt.spec, tt.defs)))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("OpenAPISchema() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
