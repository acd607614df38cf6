package check

import (
	"encoding/json"
	"strings"

	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The API server ratchets status updates (CRD validation ratcheting, on by
// default since Kubernetes 1.30): a value the update leaves as it was is
// not validated again, so a status stored before its schema was tightened
// does not make every later update fail. Values are matched to their old
// counterparts as the server correlates them: object members by name, the
// items of x-kubernetes-list-type: map lists by their keys; other lists
// only as a whole.

// ratchet drops the errors about values of status that old holds
// unchanged.
func ratchet(s *structuralschema.Structural, errs field.ErrorList, status, old any) field.ErrorList {
	if len(errs) == 0 || old == nil {
		return errs
	}
	unchanged := map[string]bool{}
	unchangedPaths(s, field.NewPath("status"), status, old, unchanged)
	if len(unchanged) == 0 {
		return errs
	}
	var out field.ErrorList
	for _, e := range errs {
		if !underAny(e.Field, unchanged) {
			out = append(out, e)
		}
	}
	return out
}

// underAny says whether path is one of paths or lies under one.
func underAny(path string, paths map[string]bool) bool {
	for p := range paths {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// unchangedPaths adds to out the paths of the values under v (at path,
// with schema s) that equal their correlated value under old.
func unchangedPaths(s *structuralschema.Structural, path *field.Path, v, old any, out map[string]bool) {
	if EqualJSON(v, old) {
		out[path.String()] = true
		return
	}
	switch v := v.(type) {
	case map[string]any:
		o, ok := old.(map[string]any)
		if !ok {
			return
		}
		for k, val := range v {
			if ov, ok := o[k]; ok {
				unchangedPaths(fieldSchema(k, s), path.Child(k), val, ov, out)
			}
		}
	case []any:
		o, ok := old.([]any)
		if !ok || s == nil || s.XListType == nil || *s.XListType != "map" || len(s.XListMapKeys) == 0 {
			return
		}
		byKey := make(map[string]any, len(o))
		for _, item := range o {
			if k, ok := mapListKey(item, s.XListMapKeys); ok {
				byKey[k] = item
			}
		}
		for i, item := range v {
			if k, ok := mapListKey(item, s.XListMapKeys); ok {
				if oi, ok := byKey[k]; ok {
					unchangedPaths(s.Items, path.Index(i), item, oi, out)
				}
			}
		}
	}
}

// mapListKey is the identity of a map list's item: its key fields' values.
func mapListKey(item any, keys []string) (string, bool) {
	m, ok := item.(map[string]any)
	if !ok {
		return "", false
	}
	vals := make([]any, len(keys))
	for i, k := range keys {
		vals[i] = m[k]
	}
	b, err := json.Marshal(vals)
	return string(b), err == nil
}
