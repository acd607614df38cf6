package callbacks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// requestOf turns a request document the schema admitted, as parseJSON
// decoded it, into a Request without parsing the body again (a Mux's
// second pass over every body, a third of its cost). It gives what
// json.Unmarshal into a Request gives, the objects' numbers as the API
// machinery decodes an Unstructured (int64 for integers, float64 for the
// rest), with three differences, all on bodies the gateway never writes:
// keys are matched exactly, not regardless of case; a key given twice
// counts once, by its last occurrence, the one the schema validated
// (json.Unmarshal also decodes the earlier ones); and escapes in the
// deadline are decoded before it is parsed. A diff operation's old and new
// values are the same JSON values as in the body, re-encoded (escapes and
// spacing may differ). It reuses the document's maps, and reads the fields
// in a fixed order, so that a body with two faults names the same one each
// time. Unknown keys are ignored, as the schema allows.
func requestOf(doc any) (*Request, error) {
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, errors.New("expected object")
	}
	var req Request
	for _, key := range requestFields {
		v, ok := top[key]
		if !ok {
			continue
		}
		var err error
		switch key {
		case "apiVersion":
			req.APIVersion, err = textOf(v)
		case "kind":
			req.Kind, err = textOf(v)
		case "uid":
			req.UID, err = textOf(v)
		case "event":
			var s string
			s, err = textOf(v)
			req.Event = Event(s)
		case "operator":
			req.Operator, err = textOf(v)
		case "callback":
			req.Callback, err = textOf(v)
		case "attempt":
			req.Attempt, err = intOf(v)
		case "deadline":
			var s string
			if s, err = textOf(v); err == nil && v != nil {
				err = req.Deadline.UnmarshalText([]byte(s)) // RFC 3339, as time.Time decodes JSON
			}
		case "object":
			req.Object, err = objectOf(v)
		case "old":
			req.Old, err = objectOf(v)
		case "diff":
			req.Diff, err = diffOf(v)
		case "oldUnavailable":
			b, ok := v.(bool)
			if !ok && v != nil {
				err = errors.New("expected boolean")
			}
			req.OldUnavailable = b
		case "children":
			req.Children, err = objectsByKindOf(v)
		case "related":
			req.Related, err = objectsByKindOf(v)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return &req, nil
}

// requestFields are the Request's JSON keys, in the order requestOf reads
// them.
var requestFields = []string{"apiVersion", "kind", "uid", "event", "operator", "callback", "attempt", "deadline",
	"object", "old", "diff", "oldUnavailable", "children", "related"}

func textOf(v any) (string, error) {
	s, ok := v.(string)
	if !ok && v != nil {
		return "", errors.New("expected string")
	}
	return s, nil
}

func intOf(v any) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		if v == nil {
			return 0, nil
		}
		return 0, errors.New("expected number")
	}
	i, err := strconv.ParseInt(string(n), 10, 0)
	if err != nil {
		return 0, fmt.Errorf("number %s is not an int", n)
	}
	return int(i), nil
}

// objectOf is an object as an Unstructured decodes it: a JSON object whose
// apiVersion parses and that has a kind.
func objectOf(v any) (*unstructured.Unstructured, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("expected object")
	}
	if b := numbersIn(m, true); b != nil {
		bad := b.violation("")
		return nil, fmt.Errorf("at %s: %s", bad.Path, bad.Message)
	}
	u := &unstructured.Unstructured{Object: m}
	// GroupVersionKind has no kind when the apiVersion does not parse
	// ("a/b/c"), as Unstructured's decoder finds it.
	if u.GroupVersionKind().Kind == "" {
		return nil, fmt.Errorf("object has no kind, or an apiVersion %q that does not parse", u.GetAPIVersion())
	}
	return u, nil
}

func objectsByKindOf(v any) (map[string]map[string]*unstructured.Unstructured, error) {
	if v == nil {
		return nil, nil
	}
	kinds, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("expected object")
	}
	out := make(map[string]map[string]*unstructured.Unstructured, len(kinds))
	// Sorted, so that two faults name the same one each time.
	for _, kind := range slices.Sorted(maps.Keys(kinds)) {
		names, ok := kinds[kind].(map[string]any)
		if !ok && kinds[kind] != nil {
			return nil, fmt.Errorf("%s: expected object", kind)
		}
		var objs map[string]*unstructured.Unstructured
		if names != nil {
			objs = make(map[string]*unstructured.Unstructured, len(names))
		}
		for _, name := range slices.Sorted(maps.Keys(names)) {
			obj, err := objectOf(names[name])
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", kind, name, err)
			}
			objs[name] = obj
		}
		out[kind] = objs
	}
	return out, nil
}

func diffOf(v any) ([]DiffOp, error) {
	if v == nil {
		return nil, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, errors.New("expected array")
	}
	ops := make([]DiffOp, 0, len(items))
	for i, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%d: expected object", i)
		}
		var op DiffOp
		var err error
		if op.Op, err = textOf(m["op"]); err == nil {
			op.Path, err = textOf(m["path"])
		}
		if old, ok := m["old"]; ok && err == nil {
			op.Old, err = rawOf(old)
		}
		if nv, ok := m["new"]; ok && err == nil {
			op.New, err = rawOf(nv)
		}
		if err != nil {
			return nil, fmt.Errorf("%d: %w", i, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// rawOf encodes a parsed value back to JSON: the same value, numbers as
// they were written (json.Number), strings with only the escapes JSON
// needs (no HTML escaping).
func rawOf(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}
