package callbacks

import (
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// The rules of schema/response.json that need values; a test holds them
// to the file, which stays the contract.
const (
	durationPattern = `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+)$`
	reasonPattern   = `^[A-Z][A-Za-z0-9]*$`
	reasonMaxLength = 128
)

var (
	durationRE = regexp.MustCompile(durationPattern)
	reasonRE   = regexp.MustCompile(reasonPattern)
)

// checkResponse applies schema/response.json to a document as parseJSON
// decodes it and returns the violations the schema validator would, in
// the same words, sorted and without duplicates as violationsOf gives
// them. It replaces running the validator on every answer, which cost as
// much as parsing it; tests prove it refuses exactly what the schema
// refuses.
func checkResponse(doc any) []Violation {
	var r responseChecker
	if top, ok := r.object(doc, ""); ok {
		for key, v := range top {
			switch key {
			case "status":
				r.object(v, "/status")
			case "children":
				r.list(v, "/children", r.child)
			case "requeueAfter":
				r.duration(v, "/requeueAfter")
			case "events":
				r.list(v, "/events", r.event)
			case "error":
				r.errorObject(v, "/error")
			case "finalized":
				r.boolean(v, "/finalized")
			default:
				r.add(pointer("", key), "unknown property")
			}
		}
	}
	return sortedViolations(r.bad)
}

type responseChecker struct{ bad []Violation }

func (r *responseChecker) add(path, message string) {
	r.bad = append(r.bad, Violation{Path: path, Message: message})
}

// wrongType reports a value of another JSON type than want, as the
// validator does before any other rule of that value.
func (r *responseChecker) wrongType(v any, path, want string) {
	r.add(path, fmt.Sprintf("expected %s, but got %s", want, typeName(v)))
}

func (r *responseChecker) object(v any, path string) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		r.wrongType(v, path, "object")
	}
	return m, ok
}

func (r *responseChecker) list(v any, path string, item func(any, string)) {
	items, ok := v.([]any)
	if !ok {
		r.wrongType(v, path, "array")
		return
	}
	for i, it := range items {
		item(it, path+"/"+strconv.Itoa(i))
	}
}

func (r *responseChecker) boolean(v any, path string) {
	if _, ok := v.(bool); !ok {
		r.wrongType(v, path, "boolean")
	}
}

func (r *responseChecker) str(v any, path string) (string, bool) {
	s, ok := v.(string)
	if !ok {
		r.wrongType(v, path, "string")
	}
	return s, ok
}

// required reports each of names missing from m.
func (r *responseChecker) required(m map[string]any, path string, names ...string) {
	for _, n := range names {
		if _, ok := m[n]; !ok {
			r.add(pointer(path, n), "missing property")
		}
	}
}

// nonEmpty is {"type": "string", "minLength": 1}.
func (r *responseChecker) nonEmpty(v any, path string) {
	if s, ok := r.str(v, path); ok && s == "" {
		r.add(path, "length must be >= 1, but got 0")
	}
}

// duration is $defs/duration.
func (r *responseChecker) duration(v any, path string) {
	if s, ok := r.str(v, path); ok && !durationRE.MatchString(s) {
		r.add(path, mustFriendly("#/$defs/duration/pattern"))
	}
}

// child is $defs/child. It builds the paths below path only for a
// violation: the Mux checks every child a handler answers.
func (r *responseChecker) child(v any, path string) {
	m, ok := r.object(v, path)
	if !ok {
		return
	}
	r.required(m, path, "apiVersion", "kind", "metadata")
	for _, k := range [...]string{"apiVersion", "kind"} {
		if f, ok := m[k]; ok && !isNonEmptyString(f) {
			r.nonEmpty(f, path+"/"+k)
		}
	}
	f, ok := m["metadata"]
	if !ok {
		return
	}
	meta, ok := f.(map[string]any)
	if !ok {
		r.wrongType(f, path+"/metadata", "object")
		return
	}
	switch name, ok := meta["name"]; {
	case !ok:
		r.add(path+"/metadata/name", "missing property")
	case !isNonEmptyString(name):
		r.nonEmpty(name, path+"/metadata/name")
	}
	if ns, ok := meta["namespace"]; ok {
		if _, isString := ns.(string); !isString {
			r.wrongType(ns, path+"/metadata/namespace", "string")
		}
	}
}

func isNonEmptyString(v any) bool {
	s, ok := v.(string)
	return ok && s != ""
}

// event is $defs/event.
func (r *responseChecker) event(v any, path string) {
	m, ok := r.object(v, path)
	if !ok {
		return
	}
	r.required(m, path, "reason")
	for key, f := range m {
		switch key {
		case "type":
			r.eventType(f, path+"/type")
		case "reason":
			r.reason(f, path+"/reason")
		case "message":
			r.str(f, path+"/message")
		default:
			r.add(pointer(path, key), "unknown property")
		}
	}
}

// eventType is an event's type: Normal or Warning.
func (r *responseChecker) eventType(v any, path string) {
	if v != EventTypeNormal && v != EventTypeWarning {
		r.add(path, `value must be one of "Normal", "Warning"`)
	}
}

// reason is $defs/reason.
func (r *responseChecker) reason(v any, path string) {
	s, ok := r.str(v, path)
	if !ok {
		return
	}
	if n := utf8.RuneCountInString(s); n > reasonMaxLength {
		r.add(path, fmt.Sprintf("length must be <= %d, but got %d", reasonMaxLength, n))
	}
	if !reasonRE.MatchString(s) {
		r.add(path, mustFriendly("#/$defs/reason/pattern"))
	}
}

// errorObject is $defs/error.
func (r *responseChecker) errorObject(v any, path string) {
	m, ok := r.object(v, path)
	if !ok {
		return
	}
	r.required(m, path, "message")
	for key, f := range m {
		switch key {
		case "message":
			r.nonEmpty(f, path+"/message")
		case "permanent":
			r.boolean(f, path+"/permanent")
		case "retryAfter":
			r.duration(f, path+"/retryAfter")
		default:
			r.add(pointer(path, key), "unknown property")
		}
	}
}

func pointer(path, name string) string { return path + "/" + escapePointer(name) }

func mustFriendly(keywordLocation string) string {
	msg, _ := friendlyMessage(keywordLocation)
	return msg
}

// typeName names a decoded value's JSON type as the validator does.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "number"
}
