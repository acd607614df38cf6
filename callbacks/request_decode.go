package callbacks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// requestOf turns a request document the schema admitted, as parseJSON
// decoded it, into a Request without parsing the body again (a Mux's
// second pass over every body, a third of its cost). It gives what
// json.Unmarshal into a Request gives: the objects' numbers as the API
// machinery decodes an Unstructured (int64 for integers, float64 for the
// rest), a diff operation's old and new values as JSON. It reuses the
// document's maps. Keys are matched exactly, as the gateway writes them;
// unknown ones are ignored, as the schema allows.
func requestOf(doc any) (*Request, error) {
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, errors.New("expected object")
	}
	var req Request
	for key, v := range top {
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
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return &req, nil
}

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

// objectOf is an object as an Unstructured decodes it: a JSON object with
// a kind.
func objectOf(v any) (*unstructured.Unstructured, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("expected object")
	}
	if b := numbersIn(m, true); b != nil {
		return nil, errors.New(b.violation("").Message)
	}
	if k, _ := m["kind"].(string); k == "" {
		return nil, errors.New("object has no kind")
	}
	return &unstructured.Unstructured{Object: m}, nil
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
	for kind, byName := range kinds {
		names, ok := byName.(map[string]any)
		if !ok && byName != nil {
			return nil, fmt.Errorf("%s: expected object", kind)
		}
		var objs map[string]*unstructured.Unstructured
		if names != nil {
			objs = make(map[string]*unstructured.Unstructured, len(names))
		}
		for name, o := range names {
			obj, err := objectOf(o)
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

// rawOf encodes a parsed value back to JSON: numbers as they were written
// (json.Number), HTML characters unescaped, as they came.
func rawOf(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}
