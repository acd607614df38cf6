package callbacks

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// responseOf turns a response document the schema admitted, as parseJSON
// decoded it, into a Response without parsing the body again. It reuses
// the document's maps and slices, and gives numbers the Go types a second
// decoding would: float64 in status, as encoding/json decodes into
// map[string]any; int64 for integers and float64 for the rest in children,
// as the API machinery decodes an Unstructured. A number no float64 holds
// (1e400) is a violation naming its path.
func responseOf(doc any) (*Response, []Violation) {
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, []Violation{{Message: "expected object"}}
	}
	var resp Response
	var bad []Violation
	for key, v := range top {
		switch key {
		case "status":
			m, ok := v.(map[string]any)
			if !ok {
				bad = append(bad, Violation{Path: "/status", Message: "expected object"})
				continue
			}
			bad = numbers(m, "/status", false, bad)
			resp.Status = m
		case "children":
			resp.Children, bad = childrenOf(v, "/children", bad)
		case "events":
			resp.Events, bad = eventsOf(v, "/events", bad)
		case "error":
			resp.Error, bad = errorOf(v, "/error", bad)
		case "requeueAfter":
			resp.RequeueAfter, bad = stringOf(v, "/requeueAfter", bad)
		case "finalized":
			b, ok := v.(bool)
			if !ok {
				bad = append(bad, Violation{Path: "/finalized", Message: "expected boolean"})
				continue
			}
			resp.Finalized = &b
		default:
			bad = append(bad, Violation{Path: "/" + escapePointer(key), Message: "unknown property"})
		}
	}
	// The walk follows the maps' random order; the message must not.
	slices.SortFunc(bad, func(a, b Violation) int { return cmp.Compare(a.Path, b.Path) })
	return &resp, bad
}

func childrenOf(v any, path string, bad []Violation) (*[]*unstructured.Unstructured, []Violation) {
	items, ok := v.([]any)
	if !ok {
		return nil, append(bad, Violation{Path: path, Message: "expected array"})
	}
	children := make([]*unstructured.Unstructured, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			bad = append(bad, Violation{Path: path + "/" + strconv.Itoa(i), Message: "expected object"})
			continue
		}
		if b := numbersIn(obj, true); b != nil {
			bad = append(bad, b.violation(path+"/"+strconv.Itoa(i)))
		}
		children = append(children, &unstructured.Unstructured{Object: obj})
	}
	return &children, bad
}

func eventsOf(v any, path string, bad []Violation) ([]KubeEvent, []Violation) {
	items, ok := v.([]any)
	if !ok {
		return nil, append(bad, Violation{Path: path, Message: "expected array"})
	}
	events := make([]KubeEvent, 0, len(items))
	for i, item := range items {
		at := path + "/" + strconv.Itoa(i)
		m, ok := item.(map[string]any)
		if !ok {
			bad = append(bad, Violation{Path: at, Message: "expected object"})
			continue
		}
		var e KubeEvent
		for key, v := range m {
			field := at + "/" + escapePointer(key)
			switch key {
			case "type":
				e.Type, bad = stringOf(v, field, bad)
			case "reason":
				e.Reason, bad = stringOf(v, field, bad)
			case "message":
				e.Message, bad = stringOf(v, field, bad)
			default:
				bad = append(bad, Violation{Path: field, Message: "unknown property"})
			}
		}
		events = append(events, e)
	}
	return events, bad
}

func errorOf(v any, path string, bad []Violation) (*Error, []Violation) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, append(bad, Violation{Path: path, Message: "expected object"})
	}
	var e Error
	for key, v := range m {
		field := path + "/" + escapePointer(key)
		switch key {
		case "message":
			e.Message, bad = stringOf(v, field, bad)
		case "retryAfter":
			e.RetryAfter, bad = stringOf(v, field, bad)
		case "permanent":
			b, ok := v.(bool)
			if !ok {
				bad = append(bad, Violation{Path: field, Message: "expected boolean"})
			}
			e.Permanent = b
		default:
			bad = append(bad, Violation{Path: field, Message: "unknown property"})
		}
	}
	return &e, bad
}

func stringOf(v any, path string, bad []Violation) (string, []Violation) {
	s, ok := v.(string)
	if !ok {
		bad = append(bad, Violation{Path: path, Message: "expected string"})
	}
	return s, bad
}

// badNumber is a number no float64 holds, with the path to it, built
// as the walk unwinds so that numbers that fit cost no path strings.
type badNumber struct {
	literal string
	within  []string // pointer segments, innermost first
}

func (b *badNumber) violation(path string) Violation {
	for i := len(b.within) - 1; i >= 0; i-- {
		path += "/" + b.within[i]
	}
	return Violation{Path: path, Message: fmt.Sprintf("number %s does not fit a 64-bit float", b.literal)}
}

// numbers replaces, in place, every json.Number under m by float64, or by
// int64 where preserveInts and the number is an integer an int64 holds
// written without a fraction, as k8s.io/apimachinery/pkg/util/json
// decodes. It stops at the first number no float64 holds, as a decoder
// does, and appends it to bad.
func numbers(m map[string]any, path string, preserveInts bool, bad []Violation) []Violation {
	if b := numbersIn(m, preserveInts); b != nil {
		bad = append(bad, b.violation(path))
	}
	return bad
}

func numbersIn(m map[string]any, preserveInts bool) *badNumber {
	for k, v := range m {
		n, b := number(v, preserveInts)
		if b != nil {
			b.within = append(b.within, escapePointer(k))
			return b
		}
		if n != nil {
			m[k] = n
		}
	}
	return nil
}

// number returns the converted value of a json.Number, and nil for any
// other value, whose insides it converts in place.
func number(v any, preserveInts bool) (any, *badNumber) {
	switch v := v.(type) {
	case json.Number:
		if preserveInts && !strings.Contains(string(v), ".") {
			if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				return i, nil
			}
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, &badNumber{literal: string(v)}
		}
		return f, nil
	case map[string]any:
		return nil, numbersIn(v, preserveInts)
	case []any:
		for i, e := range v {
			n, b := number(e, preserveInts)
			if b != nil {
				b.within = append(b.within, strconv.Itoa(i))
				return nil, b
			}
			if n != nil {
				v[i] = n
			}
		}
	}
	return nil, nil
}
