package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// parsed is one valid operator and where it was defined, kept so that a
// duplicate name can say where the first definition is.
type parsed struct {
	op       *WebhookOperator
	source   string
	document int
	nameLine int
}

// Parse reads WebhookOperators from YAML (several documents separated by
// "---"; empty documents are skipped) or JSON. Every document is checked
// against the JSON Schema and by Validate, and the valid ones are defaulted
// (see Default). Any error refuses the whole input: the result is then nil
// and the error is an ErrorList holding every problem found, each with
// source, document, line and JSON path.
func Parse(data []byte, source string) ([]*WebhookOperator, error) {
	entries, errs, err := parseSource(data, source)
	if err != nil {
		return nil, err
	}
	errs = append(errs, duplicateNames(entries)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return operators(entries), nil
}

// parseSource parses every document of one input. The error return is for
// failures of the gateway itself (the schema does not compile), not of the
// input.
func parseSource(data []byte, source string) ([]parsed, ErrorList, error) {
	var (
		entries []parsed
		errs    ErrorList
	)
	for _, s := range splitDocuments(data) {
		entry, docErrs, err := parseSection(s)
		if err != nil {
			return nil, nil, err
		}
		docErrs.locate(source, s.document, "")
		errs = append(errs, docErrs...)
		if entry != nil {
			entry.source = source
			entries = append(entries, *entry)
		}
	}
	// Line order reads like the file; the validator's order is arbitrary.
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].Document != errs[j].Document {
			return errs[i].Document < errs[j].Document
		}
		return errs[i].Line < errs[j].Line
	})
	return entries, errs, nil
}

// parseSection turns one document into a checked, defaulted operator (nil
// when it is empty or has errors) and its errors, each with the line of
// the file it is on. The content is what kubectl reads (see kubectlJSON);
// yaml.v3's node tree only finds lines, and refuses a key given twice,
// which kubectl would silently read as the last one.
func parseSection(s section) (*parsed, ErrorList, error) {
	if s.err != nil {
		return nil, ErrorList{s.err}, nil
	}
	var node yaml.Node
	err := yaml.NewDecoder(bytes.NewReader(s.data)).Decode(&node)
	if errors.Is(err, io.EOF) || (err == nil && isEmptyDocument(&node)) {
		return nil, nil, nil
	}
	var raw any
	if err == nil {
		err = node.Decode(&raw)
	}
	if err != nil {
		return nil, s.shift(yamlErrors(err, lastLine(s.data))), nil
	}
	lines := lineIndex{}
	lines.add(&node, "")
	name, _ := lookup(raw, []string{"metadata", "name"}).(string)
	doc, errs := kubectlJSON(s.data, &node)
	var op *WebhookOperator
	if listErr := refuseList(doc); listErr != nil {
		errs = ErrorList{listErr}
	} else if doc != nil {
		name, _ = lookup(doc, []string{"metadata", "name"}).(string)
		if op, errs, err = check(doc); err != nil {
			return nil, nil, err
		}
	}
	for _, e := range errs {
		if e.Line == 0 {
			e.Line = lines.of(e.Path)
		}
		e.Operator = name
	}
	if op == nil {
		return nil, s.shift(errs), nil
	}
	return &parsed{op: op, document: s.document, nameLine: s.offset + lines.of("/metadata/name")}, nil, nil
}

// refuseList refuses a List (a kind ending in List, with items), which
// kubectl would apply item by item: the schema would report every field of
// the List as wrong instead of saying what it is.
func refuseList(doc any) *FieldError {
	kind, _ := lookup(doc, []string{"kind"}).(string)
	if _, items := lookup(doc, []string{"items"}).([]any); !items || !strings.HasSuffix(kind, "List") {
		return nil
	}
	return &FieldError{Path: "/kind", Message: fmt.Sprintf("a %s is not read here: give each WebhookOperator as a document of its own "+
		"(YAML documents separated by ---, or JSON objects one after another)", kind)}
}

// kubectlJSON reads one document as `kubectl apply -f` does, so that a
// file means here what it means to the API server: JSON as it is, YAML by
// sigs.k8s.io/yaml, which reads YAML 1.1 (a bare yes, on or off is a
// boolean) and keeps a date-like value as the text written.
func kubectlJSON(data []byte, node *yaml.Node) (any, ErrorList) {
	js := data
	if !json.Valid(data) {
		var err error
		if js, err = sigsyaml.YAMLToJSON(data); err != nil {
			if errs := nonFinite(node, ""); len(errs) > 0 {
				return nil, errs
			}
			return nil, yamlErrors(err, lastLine(data))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, ErrorList{{Message: fmt.Sprintf("cannot be represented as JSON: %v", err)}}
	}
	return doc, nil
}

// check validates a JSON-compatible document with the schema, decodes it
// and runs the semantic checks. It still runs them when the schema finds
// errors, as long as the document decodes, so that a user sees all
// problems at once.
func check(doc any) (*WebhookOperator, ErrorList, error) {
	errs, err := validateSchema(doc)
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("encode document: %w", err)
	}
	op := &WebhookOperator{}
	if err := json.Unmarshal(b, op); err != nil {
		if len(errs) == 0 {
			// The schema let through something the Go types cannot hold,
			// such as a duration too long for time.Duration.
			errs = append(errs, &FieldError{Message: fmt.Sprintf("decode: %v", err)})
		}
		return nil, errs, nil
	}
	// A path the schema already refused, or one inside it, needs no second
	// opinion: "/spec: required field is missing" says it all.
	schemaErrs := errs
	for _, e := range validate(op) {
		if !within(e.Path, schemaErrs) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Path < errs[j].Path })
		return nil, errs, nil
	}
	Default(op)
	return op, nil, nil
}

// within reports whether path is one of the errors' paths or inside one.
func within(path string, errs ErrorList) bool {
	for _, e := range errs {
		if path == e.Path || strings.HasPrefix(path, e.Path+"/") {
			return true
		}
	}
	return false
}

// jsonCompatible turns what the YAML decoder produced into what
// encoding/json would have: map keys become strings (as kubectl does with
// keys such as 1 or true) and numbers become json.Number.
func jsonCompatible(v any) (any, error) {
	b, err := json.Marshal(stringKeys(v))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// stringKeys copies v with every map key a string; it copies rather than
// converting in place so that callers' maps are never written to.
func stringKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = stringKeys(e)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = stringKeys(e)
		}
		return s
	default:
		return v
	}
}
