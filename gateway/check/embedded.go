package check

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
)

// coerceEmbeddedMeta gives the type and object metadata of obj (a whole
// resource) and of every embedded resource in it
// (x-kubernetes-embedded-resource) the form the server stores: apiVersion
// and kind that are not strings are dropped, metadata becomes what decodes
// into an ObjectMeta, field by field when the whole does not. The server
// does this to a default before pruning it; so does pruneDefaults.
func coerceEmbeddedMeta(obj map[string]any, root *structuralschema.Structural) error {
	s := structuralschema.Structural{}
	if root != nil {
		s = *root
	}
	s.XEmbeddedResource = true
	return coerceMeta(obj, &s)
}

func coerceMeta(x any, s *structuralschema.Structural) error {
	if s == nil {
		return nil
	}
	switch x := x.(type) {
	case map[string]any:
		for k, v := range x {
			if s.XEmbeddedResource {
				if err := coerceMetaField(x, k, v); err != nil {
					return err
				}
			}
			if prop, ok := s.Properties[k]; ok {
				if err := coerceMeta(v, &prop); err != nil {
					return err
				}
			} else if s.AdditionalProperties != nil {
				if err := coerceMeta(v, s.AdditionalProperties.Structural); err != nil {
					return err
				}
			}
		}
	case []any:
		for _, v := range x {
			if err := coerceMeta(v, s.Items); err != nil {
				return err
			}
		}
	}
	return nil
}

// coerceMetaField coerces field k, of value v, of the resource x.
func coerceMetaField(x map[string]any, k string, v any) error {
	switch k {
	case "apiVersion", "kind":
		if _, ok := v.(string); !ok {
			delete(x, k)
		}
	case "metadata":
		meta, ok := decodeObjectMeta(v)
		if !ok {
			return nil // neither an object nor an ObjectMeta: left as it is
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(meta)
		if err != nil {
			return err
		}
		if meta.CreationTimestamp.IsZero() {
			delete(m, "creationTimestamp")
		}
		x["metadata"] = m
	}
	return nil
}

// decodeObjectMeta decodes metadata as an ObjectMeta, whole if it can,
// otherwise field by field, dropping those that do not decode. It is false
// when metadata does not encode, or decodes neither whole nor as an object.
func decodeObjectMeta(metadata any) (*metav1.ObjectMeta, bool) {
	raw, err := utiljson.Marshal(metadata)
	if err != nil {
		return nil, false
	}
	meta := &metav1.ObjectMeta{}
	if utiljson.Unmarshal(raw, meta) == nil {
		return meta, true
	}
	fields, ok := metadata.(map[string]any)
	if !ok {
		return nil, false
	}
	meta = &metav1.ObjectMeta{}
	for k, v := range fields {
		one, err := utiljson.Marshal(map[string]any{k: v})
		if err != nil {
			continue
		}
		// Decode each into a scratch ObjectMeta first: a failed decode
		// may have set part of what it failed on.
		if utiljson.Unmarshal(one, &metav1.ObjectMeta{}) == nil {
			_ = utiljson.Unmarshal(one, meta)
		}
	}
	return meta, true
}
