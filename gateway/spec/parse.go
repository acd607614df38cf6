package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
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

// LoadFiles parses the given files (a directory stands for its *.yaml,
// *.yml and *.json files) like Parse, and refuses an operator name defined
// twice, in one file or across files. It reports the errors of every file,
// not only of the first bad one.
func LoadFiles(paths ...string) ([]*WebhookOperator, error) {
	files, err := expandPaths(paths)
	if err != nil {
		return nil, err
	}
	var (
		entries []parsed
		errs    ErrorList
	)
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &FieldError{Source: path, Message: fmt.Sprintf("read: %v", err)})
			continue
		}
		e, fileErrs, err := parseSource(data, path)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e...)
		errs = append(errs, fileErrs...)
	}
	errs = append(errs, duplicateNames(entries)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return operators(entries), nil
}

// expandPaths replaces each directory by the manifest files directly in it,
// in name order, so that `-f operators/` works as with kubectl.
func expandPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no files given")
	}
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil || !info.IsDir() {
			files = append(files, p) // a missing file is reported by the reader, with the others
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", p, err)
		}
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
		}
	}
	return files, nil
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
			list := yamlErrors(err)
			list.locate(source, doc, "")
			errs = append(errs, list...)
			break
		}
		if isEmptyDocument(&node) {
			continue
		}
		op, name, lines, docErrs, err := parseDocument(&node)
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
func parseDocument(node *yaml.Node) (*WebhookOperator, string, lineIndex, ErrorList, error) {
	lines := lineIndex{}
	lines.add(node, "")
	var raw any
	if err := node.Decode(&raw); err != nil {
		return nil, "", lines, yamlErrors(err), nil
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
	// A path the schema already refused needs no second opinion.
	refused := map[string]bool{}
	for _, e := range errs {
		refused[e.Path] = true
	}
	for _, e := range validate(op) {
		if !refused[e.Path] {
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

func isEmptyDocument(n *yaml.Node) bool {
	if n.Kind == 0 {
		return true
	}
	if n.Kind != yaml.DocumentNode {
		return false
	}
	return len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].ShortTag() == "!!null")
}

// yamlLine matches the "line N: message" the YAML library puts in its errors.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlErrors turns a YAML library error into FieldErrors with line numbers.
func yamlErrors(err error) ErrorList {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	list := make(ErrorList, 0, len(msgs))
	for _, m := range msgs {
		fe := &FieldError{Message: "invalid YAML: " + m}
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			fe.Line, _ = strconv.Atoi(sub[1])
			fe.Message = "invalid YAML: " + sub[2]
		}
		list = append(list, fe)
	}
	return list
}

// lineIndex maps JSON pointers to the line where that key or item starts.
type lineIndex map[string]int

func (l lineIndex) add(n *yaml.Node, ptr string) {
	if _, ok := l[ptr]; !ok {
		l[ptr] = n.Line
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			l.add(c, ptr)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			p := joinPointer(ptr, key.Value)
			l[p] = key.Line
			l.add(value, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			l.add(c, ptr+"/"+strconv.Itoa(i))
		}
	}
}

// of returns the line of ptr, or of its closest ancestor that is in the
// document (a missing field is reported on the line of its parent).
func (l lineIndex) of(ptr string) int {
	for {
		if line, ok := l[ptr]; ok {
			return line
		}
		i := strings.LastIndexByte(ptr, '/')
		if i < 0 {
			return 0
		}
		ptr = ptr[:i]
	}
}

// duplicateNames refuses a second operator with the same name: both would
// hold the same finalizer and state annotation on the same objects.
func duplicateNames(entries []parsed) ErrorList {
	first := map[string]parsed{}
	var errs ErrorList
	for _, e := range entries {
		name := e.op.Name
		prev, seen := first[name]
		if !seen {
			first[name] = e
			continue
		}
		where := fmt.Sprintf("document %d", prev.document)
		if prev.source != e.source {
			where = fmt.Sprintf("%s (document %d)", prev.source, prev.document)
		}
		errs = append(errs, &FieldError{
			Source: e.source, Line: e.nameLine, Document: e.document, Operator: name,
			Path:    "/metadata/name",
			Message: fmt.Sprintf("operator %q is already defined in %s", name, where),
		})
	}
	return errs
}

func operators(entries []parsed) []*WebhookOperator {
	ops := make([]*WebhookOperator, len(entries))
	for i, e := range entries {
		ops[i] = e.op
	}
	return ops
}
