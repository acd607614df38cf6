package check

import (
	"fmt"
	"reflect"

	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apimachinery/pkg/runtime"
)

// The defaulting below is the API server's, for a structural schema: the
// order and the cases (a null where the schema allows none, a default
// under a field pruning would drop) are the server's, held equal to it by
// the differential tests. It is written here for the reason given in
// openapi.go: the server's package carries CEL and feature gates.

// nullNotAllowed says whether x is a null that s does not allow.
func nullNotAllowed(x any, s *structuralschema.Structural) bool {
	return x == nil && s != nil && !s.Nullable
}

// applyDefaults sets, in x, every absent field that has a default in s,
// and every null that s does not allow, to a copy of its default, at any
// depth. A null without a default must have been pruned before.
func applyDefaults(x any, s *structuralschema.Structural) {
	if s == nil {
		return
	}
	switch x := x.(type) {
	case map[string]any:
		for k, prop := range s.Properties {
			if prop.Default.Object == nil {
				continue
			}
			if v, found := x[k]; !found || nullNotAllowed(v, &prop) {
				x[k] = runtime.DeepCopyJSONValue(prop.Default.Object)
			}
		}
		for k, v := range x {
			if prop, found := s.Properties[k]; found {
				applyDefaults(v, &prop)
				continue
			}
			if s.AdditionalProperties == nil {
				continue
			}
			values := s.AdditionalProperties.Structural
			if nullNotAllowed(v, values) {
				x[k] = runtime.DeepCopyJSONValue(values.Default.Object)
			}
			applyDefaults(x[k], values)
		}
	case []any:
		for i := range x {
			if nullNotAllowed(x[i], s.Items) {
				x[i] = runtime.DeepCopyJSONValue(s.Items.Default.Object)
			}
			applyDefaults(x[i], s.Items)
		}
	}
}

// pruneNullsWithoutDefaults deletes from x's objects every null that the
// schema of its field does not allow and has no default for (those with a
// default are set to it by applyDefaults). Nulls in arrays stay.
func pruneNullsWithoutDefaults(x any, s *structuralschema.Structural) {
	switch x := x.(type) {
	case map[string]any:
		for k, v := range x {
			fs := fieldSchema(k, s)
			if nullNotAllowed(v, fs) && fs.Default.Object == nil {
				delete(x, k)
				continue
			}
			pruneNullsWithoutDefaults(v, fs)
		}
	case []any:
		var items *structuralschema.Structural
		if s != nil {
			items = s.Items
		}
		for _, v := range x {
			pruneNullsWithoutDefaults(v, items)
		}
	}
}

// fieldSchema is the schema of field k of an object of schema s, nil when
// s does not say.
func fieldSchema(k string, s *structuralschema.Structural) *structuralschema.Structural {
	if s == nil {
		return nil
	}
	if prop, ok := s.Properties[k]; ok {
		return &prop
	}
	if s.AdditionalProperties != nil {
		return s.AdditionalProperties.Structural
	}
	return nil
}

// pruneDefaults drops from every default in root what the server's pruning
// would drop from the object it sits in, so that defaulting never adds a
// field the schema does not know. It modifies root.
func pruneDefaults(root *structuralschema.Structural) error {
	_, err := pruneDefaultsAt(root, root, nil)
	return err
}

// defaultStep is one step from the root to a default: a property (or "*"
// for any additional property) or, when index, an array item.
type defaultStep struct {
	key   string
	index bool
}

// pruneDefaultsAt prunes the defaults in s, which sits at path from root,
// and says whether one changed.
func pruneDefaultsAt(root, s *structuralschema.Structural, path []defaultStep) (bool, error) {
	if s == nil {
		return false, nil
	}
	changed := false
	if s.Default.Object != nil {
		orig := runtime.DeepCopyJSONValue(s.Default.Object)
		pruned, err := prunedDefault(root, s.Default.Object, path)
		if err != nil {
			return false, fmt.Errorf("failed to prune default value: %w", err)
		}
		s.Default.Object = pruned
		changed = !reflect.DeepEqual(orig, pruned)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Structural != nil {
		c, err := pruneDefaultsAt(root, s.AdditionalProperties.Structural, appendStep(path, defaultStep{key: "*"}))
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	if s.Items != nil {
		c, err := pruneDefaultsAt(root, s.Items, appendStep(path, defaultStep{index: true}))
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	for k, prop := range s.Properties {
		c, err := pruneDefaultsAt(root, &prop, appendStep(path, defaultStep{key: k}))
		if err != nil {
			return false, err
		}
		if c {
			s.Properties[k] = prop
			changed = true
		}
	}
	return changed, nil
}

// appendStep returns path plus step without sharing path's backing array.
func appendStep(path []defaultStep, step defaultStep) []defaultStep {
	return append(path[:len(path):len(path)], step)
}

// prunedDefault puts def where path says in an otherwise empty object,
// coerces and prunes that object as the server does a stored one, and
// returns what is left at path: nil when nothing is.
func prunedDefault(root *structuralschema.Structural, def any, path []defaultStep) (any, error) {
	obj := def
	for i := len(path) - 1; i >= 0; i-- {
		if path[i].index {
			obj = []any{obj}
		} else {
			obj = map[string]any{path[i].key: obj}
		}
	}
	top, ok := obj.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("object root default value must be of object type")
	}
	if err := coerceEmbeddedMeta(top, root); err != nil {
		return nil, err
	}
	structuralpruning.Prune(top, root, true)
	return valueAt(top, path)
}

// valueAt is the value at path in obj, nil when there is none there.
func valueAt(obj map[string]any, path []defaultStep) (any, error) {
	var x any = obj
	for i, step := range path {
		if step.index {
			list, ok := x.([]any)
			if !ok {
				return nil, accessError(path, i, "array")
			}
			if len(list) == 0 {
				return nil, nil
			}
			x = list[0]
			continue
		}
		m, ok := x.(map[string]any)
		if !ok {
			return nil, accessError(path, i, "object")
		}
		if x, ok = m[step.key]; !ok {
			return nil, nil
		}
	}
	return x, nil
}

// accessError says that the value before step i of path is not of type
// typ, in the server's words: each later step prefixes its own name, so
// they come first, last one first.
func accessError(path []defaultStep, i int, typ string) error {
	s := ""
	for j := len(path) - 1; j >= i; j-- {
		if path[j].index {
			s += "[]"
		} else {
			s += "." + path[j].key
		}
	}
	return fmt.Errorf("%s must be of %s type", s, typ)
}
