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
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var (
		entries []parsed
		errs    ErrorList
	)
	for doc := 1; ; doc++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// After a syntax error the parser cannot find the next document.
			list := yamlErrors(err, lastLine(data))
			list.locate(source, doc, "")
			errs = append(errs, list...)
			break
		}
		if isEmptyDocument(&node) {
			continue
		}
		op, name, lines, docErrs, err := parseDocument(&node, lastLine(data))
		if err != nil {
			return nil, nil, err
		}
		for _, e := range docErrs {
			if e.Line == 0 {
				e.Line = lines.of(e.Path)
			}
		}
		docErrs.locate(source, doc, name)
		errs = append(errs, docErrs...)
		if op != nil {
			entries = append(entries, parsed{op: op, source: source, document: doc, nameLine: lines.of("/metadata/name")})
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

// parseDocument turns one YAML document into a checked, defaulted operator
// (nil when it has errors), its name as far as it can be read, and the
// line of every path in it.
func parseDocument(node *yaml.Node, lastLine int) (*WebhookOperator, string, lineIndex, ErrorList, error) {
	lines := lineIndex{}
	lines.add(node, "")
	var raw any
	if err := node.Decode(&raw); err != nil {
		return nil, "", lines, yamlErrors(err, lastLine), nil
	}
	doc, err := jsonCompatible(raw)
	if err != nil {
		return nil, "", lines, ErrorList{{Message: fmt.Sprintf("cannot be represented as JSON: %v", err)}}, nil
	}
	name, _ := lookup(doc, []string{"metadata", "name"}).(string)
	op, errs, err := check(doc)
	return op, name, lines, errs, err
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
