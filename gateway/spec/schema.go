package spec

import (
	_ "embed" // the JSON Schema ships inside the binary
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

//go:embed schema/webhookoperator.json
var schemaJSON string

// schemaURL must equal the schema's $id, so that the compiler resolves the
// schema's own "#/$defs/..." references against the embedded copy and never
// tries to fetch anything.
const schemaURL = "https://opgate.dev/schemas/v1alpha1/webhookoperator.json"

// JSONSchema returns the JSON Schema (draft 2020-12) of a whole
// WebhookOperator document. The CRD's openAPIV3Schema is generated from it
// (hack/gencrd), so files and cluster objects are held to the same rules.
func JSONSchema() []byte { return []byte(schemaJSON) }

// compiledSchema is built once: compiling is the costly part, and the
// compiled schema is immutable and safe for concurrent use.
var compiledSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	// Draft 2020-12 treats format as an annotation; we want "uri" and
	// "date-time" checked, as the API server checks them in the CRD.
	c.AssertFormat = true
	if err := c.AddResource(schemaURL, strings.NewReader(schemaJSON)); err != nil {
		return nil, fmt.Errorf("load WebhookOperator schema: %w", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("compile WebhookOperator schema: %w", err)
	}
	return s, nil
})

// rawSchema is the schema as plain JSON, used to phrase errors better than
// the validator can (which fields are unknown or missing, what a pattern
// means).
var rawSchema = sync.OnceValues(func() (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(schemaJSON), &m); err != nil {
		return nil, fmt.Errorf("parse WebhookOperator schema: %w", err)
	}
	return m, nil
})

// patternMeaning says in words what each pattern of the schema, keyed by
// the JSON pointer of the schema holding it, stands for: "does not match
// pattern '^([0-9]+(\.[0-9]+)?...'" helps nobody. A test makes sure every
// pattern of the schema is here.
var patternMeaning = map[string]string{
	"/$defs/dnsLabel":                                         "a DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
	"/$defs/dnsSubdomain":                                     "a DNS subdomain (DNS labels joined by '.', at most 253 characters)",
	"/$defs/duration":                                         "a Go duration such as 500ms, 30s or 1h30m",
	"/$defs/kind":                                             "a kind in CamelCase, such as Deployment",
	"/$defs/secretKeyRef/properties/key":                      "a Secret key (letters, digits, '-', '_' and '.')",
	"/$defs/handler/properties/url":                           "an http:// or https:// URL with a host",
	"/$defs/handler/properties/service/properties/path":       "a path starting with /",
	"/$defs/handler/properties/auth/properties/caBundle":      "base64 (standard alphabet, padded, no line breaks)",
	"/$defs/callback/properties/path":                         "a path starting with /",
	"/$defs/callback/properties/when/properties/fields/items": "a dotted path such as spec.size",
	"/$defs/condition/properties/type":                        "a condition type such as Ready",
	"/$defs/condition/properties/reason":                      "a CamelCase reason such as KindNotFound",
}

// validateSchema checks a JSON-compatible value (maps, slices, strings,
// json.Number or float64, bools, nil) against the WebhookOperator schema
// and returns one FieldError per violated rule.
func validateSchema(doc any) (ErrorList, error) {
	s, err := compiledSchema()
	if err != nil {
		return nil, err
	}
	raw, err := rawSchema()
	if err != nil {
		return nil, err
	}
	err = s.Validate(doc)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, fmt.Errorf("validate against WebhookOperator schema: %w", err)
	}
	var list ErrorList
	for _, leaf := range leaves(ve) {
		list = append(list, describe(leaf, doc, raw)...)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	return list, nil
}

// leaves flattens the validator's error tree: the inner nodes only say
// "doesn't validate with ..." and hide the real cause.
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// describe turns one validator error into FieldErrors, splitting "missing
// properties: a, b" and "additionalProperties 'x' not allowed" into one
// error per field so that each points at its own path (and line).
func describe(leaf *jsonschema.ValidationError, doc any, raw map[string]any) ErrorList {
	keywordPath := leaf.AbsoluteKeywordLocation
	if i := strings.IndexByte(keywordPath, '#'); i >= 0 {
		keywordPath = keywordPath[i+1:]
	}
	segments := splitPointer(keywordPath)
	if len(segments) == 0 {
		return ErrorList{{Path: leaf.InstanceLocation, Message: leaf.Message}}
	}
	keyword := segments[len(segments)-1]
	node, _ := lookup(raw, segments[:len(segments)-1]).(map[string]any)
	instance := lookup(doc, splitPointer(leaf.InstanceLocation))

	switch keyword {
	case "required":
		obj, _ := instance.(map[string]any)
		var list ErrorList
		explained := false
		for _, name := range stringsOf(node["required"]) {
			if renamedFrom(node, obj, name) {
				explained = true // the rename message at the old key says it all
				continue
			}
			if _, ok := obj[name]; !ok {
				list = append(list, &FieldError{Path: joinPointer(leaf.InstanceLocation, name), Message: "required field is missing"})
			}
		}
		if len(list) > 0 || explained {
			return list
		}
	case "additionalProperties":
		obj, _ := instance.(map[string]any)
		known, _ := node["properties"].(map[string]any)
		var list ErrorList
		for name := range obj {
			if _, ok := known[name]; !ok {
				msg := "unknown field"
				if r, ok := renamed(node)[name]; ok {
					msg = r.message(name)
				}
				list = append(list, &FieldError{Path: joinPointer(leaf.InstanceLocation, name), Message: msg})
			}
		}
		if len(list) > 0 {
			return list
		}
	case "not":
		if not, ok := node["not"].(map[string]any); ok {
			if fields := stringsOf(not["required"]); len(fields) > 1 {
				return ErrorList{{Path: leaf.InstanceLocation, Message: "set only one of " + strings.Join(fields, ", ")}}
			}
		}
	case "pattern":
		if meaning, ok := patternMeaning[strings.TrimSuffix(keywordPath, "/pattern")]; ok {
			return ErrorList{{Path: leaf.InstanceLocation, Message: fmt.Sprintf("%s is not %s", quoteValue(instance), meaning)}}
		}
	}
	return ErrorList{{Path: leaf.InstanceLocation, Message: leaf.Message}}
}

// rename is a field's old name and its new one.
type rename struct{ from, to string }

// renamed maps each old key of a schema node's "x-opgate-renamed" (old
// field name → new) to its rename, so that a document written before a
// rename gets told the new name instead of "unknown field"; hack/gencrd
// gives the CRD the same message. It also maps the key kubectl makes of
// the old name: YAML 1.1 reads a bare on as true.
func renamed(node map[string]any) map[string]rename {
	out := map[string]rename{}
	m, _ := node["x-opgate-renamed"].(map[string]any)
	for from, to := range m {
		if s, ok := to.(string); ok {
			out[from] = rename{from, s}
			out[kubectlKey(from)] = rename{from, s}
		}
	}
	return out
}

// message says what the key is now called, and why a key the user may have
// written as `on` is named `true`.
func (r rename) message(key string) string {
	if key != r.from {
		// The key the user wrote is lost by then: a bare yes, y or on
		// all read as true.
		return fmt.Sprintf("`%s`: kubectl reads a bare YAML 1.1 boolean key (%s, yes, y, ...) as %s; if it is `%s`, that field was renamed to `%s`", key, r.from, key, r.from, r.to)
	}
	return fmt.Sprintf("`%s` was renamed to `%s`", r.from, r.to)
}

// renamedFrom reports whether the required field name is missing because
// obj still uses its old name.
func renamedFrom(node, obj map[string]any, name string) bool {
	for key, r := range renamed(node) {
		if _, has := obj[key]; has && r.to == name {
			return true
		}
	}
	return false
}

// splitPointer splits a JSON pointer into its unescaped reference tokens.
func splitPointer(p string) []string {
	if p == "" || p == "/" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts
}

// joinPointer appends one reference token to a JSON pointer.
func joinPointer(p, token string) string {
	return p + "/" + strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
}

// lookup follows tokens through maps and slices; nil when absent.
func lookup(v any, tokens []string) any {
	for _, t := range tokens {
		switch x := v.(type) {
		case map[string]any:
			v = x[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func stringsOf(v any) []string {
	items, _ := v.([]any)
	var out []string
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
