package callbacks

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The rules of schema/request.json that need values; a test holds them to
// the file, which stays the contract.
var (
	requestRequired = []string{"apiVersion", "kind", "uid", "event", "operator", "callback", "attempt", "deadline", "object"}
	requestEvents   = []string{string(EventCreate), string(EventUpdate), string(EventDelete), string(EventResume), string(EventTimer), string(EventSync)}
	diffOps         = []string{OpAdd, OpChange, OpRemove}
)

const attemptMinimum = 1

// The validator's messages for the rules above, built once.
var (
	apiVersionMessage = fmt.Sprintf("value must be %q", APIVersion)
	kindMessage       = fmt.Sprintf("value must be %q", RequestKind)
	eventMessage      = oneOfMessage(requestEvents)
	diffOpMessage     = oneOfMessage(diffOps)
)

// isDateTime is the validator's own reading of "format": "date-time" (RFC
// 3339 with leap seconds and its quirks), taken from its registry as the
// schema compiler takes it, so the two cannot part on a deadline.
var isDateTime = jsonschema.Formats["date-time"]

// parseRequest parses body as exactly one JSON value and checks it against
// schema/request.json, as ValidateRequest and a Mux do.
func parseRequest(body []byte) (any, error) {
	doc, err := parseJSON(body)
	if err != nil {
		return nil, &ContractError{Document: "request", Violations: []Violation{{Message: err.Error()}}}
	}
	if bad := checkRequest(doc); len(bad) > 0 {
		return nil, &ContractError{Document: "request", Violations: bad}
	}
	return doc, nil
}

// checkRequest applies schema/request.json to a document as parseJSON
// decodes it and returns the violations the schema validator would, in
// the same words and paths (its quirks kept: keys of children and related
// URL-escaped, empty keys left out), sorted and without duplicates. It
// replaces running the validator on every request a Mux serves, a fifth
// of its cost; tests prove it refuses exactly what the schema refuses. One
// message differs: an unknown key of a diff operation ending in a
// backslash, which the validator quotes ambiguously, is named at its own
// path.
func checkRequest(doc any) []Violation {
	var r requestChecker
	top, ok := r.object(doc, "")
	if !ok {
		return r.bad
	}
	r.required(top, "", requestRequired...)
	for key, v := range top {
		switch key {
		case "apiVersion":
			if v != APIVersion {
				r.add("/apiVersion", apiVersionMessage)
			}
		case "kind":
			if v != RequestKind {
				r.add("/kind", kindMessage)
			}
		case "event":
			if s, ok := v.(string); !ok || !slices.Contains(requestEvents, s) {
				r.add("/event", eventMessage)
			}
		case "uid":
			r.nonEmpty(v, "/uid")
		case "operator":
			r.nonEmpty(v, "/operator")
		case "callback":
			r.nonEmpty(v, "/callback")
		case "attempt":
			r.attempt(v)
		case "deadline":
			if s, ok := r.str(v, "/deadline"); ok && !isDateTime(s) {
				r.add("/deadline", fmt.Sprintf("%s is not valid %s", validatorQuote(s), validatorQuote("date-time")))
			}
		case "object":
			r.kubeObject(v, "/object")
		case "old":
			r.kubeObject(v, "/old")
		case "diff":
			r.list(v, "/diff", r.diffOp)
		case "oldUnavailable":
			r.boolean(v, "/oldUnavailable")
		case "children":
			r.objectsByKind(v, "/children")
		case "related":
			r.objectsByKind(v, "/related")
		}
		// Any other key is allowed, so that handlers keep working when the
		// gateway adds fields.
	}
	return sortedViolations(r.bad)
}

// requestChecker shares the response checker's rules for types, required
// properties and non-empty strings, which both schemas spell the same.
type requestChecker struct{ responseChecker }

// attempt is {"type": "integer", "minimum": 1}.
func (r *requestChecker) attempt(v any) {
	n, ok := v.(json.Number)
	integer, positive := false, false
	if ok {
		integer, positive = integerValue(n)
	}
	switch {
	case !integer:
		r.wrongType(v, "/attempt", "integer")
	case !positive:
		r.add("/attempt", fmt.Sprintf("must be >= %d but found %s", attemptMinimum, n))
	}
}

// kubeObject is $defs/object, the same rules as response.json's
// $defs/child.
func (r *requestChecker) kubeObject(v any, path string) { r.child(v, path) }

// diffOp is $defs/diffOp.
func (r *requestChecker) diffOp(v any, path string) {
	m, ok := r.object(v, path)
	if !ok {
		return
	}
	r.required(m, path, "op", "path")
	for key, f := range m {
		switch key {
		case "op":
			if s, ok := f.(string); !ok || !slices.Contains(diffOps, s) {
				r.add(path+"/op", diffOpMessage)
			}
		case "path":
			r.nonEmpty(f, path+"/path")
		case "old", "new":
			// any JSON value
		default:
			r.add(pointer(path, key), "unknown property")
		}
	}
}

// objectsByKind is $defs/objectsByKind: objects keyed by "apiVersion/Kind",
// then by name.
func (r *requestChecker) objectsByKind(v any, path string) {
	kinds, ok := r.object(v, path)
	if !ok {
		return
	}
	for kind, byName := range kinds {
		kindPath := instancePath(path, kind)
		names, ok := r.object(byName, kindPath)
		if !ok {
			continue
		}
		for name, obj := range names {
			r.kubeObject(obj, instancePath(kindPath, name))
		}
	}
}

// integerValue reads a JSON number literal exactly: whether its value is an
// integer ("1.0" and "1e3" are) and whether it is positive. The validator
// answers with math/big, whose parser gives up on an exponent beyond about
// ±1e6 (and the validator then panics); the literal's digits answer for any
// exponent, in the same way where math/big does.
func integerValue(n json.Number) (integer, positive bool) {
	s, negative := strings.CutPrefix(string(n), "-")
	mantissa, exp := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mantissa, exp = s[:i], exponentOf(s[i+1:])
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	// The value is the significant digits times a power of ten: an integer
	// when the exponent moves every fractional digit left of the point.
	if frac = strings.TrimRight(frac, "0"); frac != "" {
		return exp >= int64(len(frac)), !negative
	}
	sig := strings.TrimRight(whole, "0")
	if sig == "" {
		return true, false // zero, however written
	}
	return exp >= -int64(len(whole)-len(sig)), !negative
}

// exponentOf reads an exponent's digits, bounded far beyond any digit count
// a body can hold so that it cannot overflow.
func exponentOf(text string) int64 {
	digits, negative := strings.CutPrefix(text, "-")
	digits = strings.TrimPrefix(digits, "+")
	var e int64
	for _, c := range digits {
		e = min(e*10+int64(c-'0'), 1<<40)
	}
	if negative {
		return -e
	}
	return e
}

// instancePath adds a key to a path as the validator writes its instance
// paths, which violationsOf keeps: the key as a JSON pointer token, then
// URL-escaped ("my pod" is "my%20pod"), and nothing for an empty key.
func instancePath(path, key string) string {
	if key == "" {
		return path
	}
	return path + "/" + url.PathEscape(escapePointer(key))
}

// validatorQuote quotes a value as the validator's messages do: Go-quoted
// in single quotes, with " left alone and ' escaped.
func validatorQuote(s string) string {
	q := strings.ReplaceAll(strings.ReplaceAll(fmt.Sprintf("%q", s), `\"`, `"`), `'`, `\'`)
	return "'" + q[1:len(q)-1] + "'"
}

func oneOfMessage(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	return "value must be one of " + strings.Join(quoted, ", ")
}

// sortedViolations orders violations as violationsOf does, by path then
// message, without duplicates.
func sortedViolations(bad []Violation) []Violation {
	slices.SortFunc(bad, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(bad)
}
