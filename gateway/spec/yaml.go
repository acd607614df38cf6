package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// section is one document of a file, split where kubectl splits it.
type section struct {
	data []byte
	// document is its 1-based number, counting empty documents.
	document int
	// offset is the number of lines of the file before data.
	offset int
	// err refuses a section whose "---" line kubectl refuses.
	err *FieldError
}

// splitDocuments splits data where kubectl does (the YAMLReader of
// k8s.io/apimachinery/pkg/util/yaml, which yaml.v3 does not quite match):
// at every line that starts with "---" followed by nothing but spaces and
// a comment. Any other "---" line is refused, as kubectl refuses it. What
// comes before the first "---" is a document only if it holds more than
// blank lines and comments.
func splitDocuments(data []byte) []section {
	var (
		sections []section
		current  section
		pos      int
	)
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		pos += len(line)
		rest, ok := bytes.CutPrefix(line, []byte("---"))
		if !ok {
			current.data = append(current.data, line...)
			continue
		}
		sections = append(sections, current)
		current = section{offset: i + 1}
		if trimmed := bytes.TrimSpace(rest); len(trimmed) > 0 && trimmed[0] != '#' {
			current.err = &FieldError{Line: i + 1, Message: fmt.Sprintf("invalid YAML: %q: a document separator may be followed only by a comment (kubectl refuses it too)", bytes.TrimSpace(line))}
		}
	}
	sections = append(sections, current)
	if s := sections[0]; s.err == nil && onlyComments(s.data) {
		sections = sections[1:]
	}
	var split []section
	for _, s := range sections {
		split = append(split, jsonObjects(s)...)
	}
	sections = split
	for i := range sections {
		sections[i].document = i + 1
	}
	return sections
}

// jsonObjects splits a section that is a stream of JSON values, one after
// another ({...}{...}), into one section each, as kubectl reads every
// object of such a stream. Text after a whole value is refused, as kubectl
// refuses it; the yaml.v3 parser would read only the first value and drop
// the rest. A section whose first value is not JSON (flow-style YAML such
// as {a: b}) is left whole, to be read as YAML.
func jsonObjects(s section) []section {
	if s.err != nil || !bytes.HasPrefix(bytes.TrimLeftFunc(s.data, unicode.IsSpace), []byte("{")) {
		return []section{s}
	}
	var (
		objects []section
		end     int64
	)
	dec := json.NewDecoder(bytes.NewReader(s.data))
	for {
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return objects
		}
		start := end + int64(len(s.data[end:])-len(bytes.TrimLeftFunc(s.data[end:], unicode.IsSpace)))
		line := s.offset + bytes.Count(s.data[:start], []byte("\n"))
		if err != nil {
			if len(objects) == 0 {
				return []section{s}
			}
			if onlyComments(s.data[end:]) {
				return objects // newer kubectl reads the rest as YAML, where a comment is nothing
			}
			return append(objects, section{offset: line, err: &FieldError{Line: line + 1, Message: fmt.Sprintf(
				"invalid JSON after the object that ends on line %d: %v; a JSON file holds objects one after another",
				s.offset+lastLine(s.data[:end]), err)}})
		}
		end = dec.InputOffset()
		objects = append(objects, section{data: s.data[start:end], offset: line})
	}
}

func onlyComments(data []byte) bool {
	for line := range bytes.Lines(data) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

// shift turns the section's line numbers into the file's.
func (s section) shift(errs ErrorList) ErrorList {
	for _, e := range errs {
		if e.Line > 0 {
			e.Line += s.offset
		}
	}
	return errs
}

// nonFinite finds the infinities and NaNs under n, which YAML has and JSON
// has not: kubectl refuses the document without saying where they are.
func nonFinite(n *yaml.Node, ptr string) ErrorList {
	var errs ErrorList
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			errs = append(errs, nonFinite(c, ptr)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			errs = append(errs, nonFinite(c, ptr+"/"+strconv.Itoa(i))...)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, nonFinite(n.Content[i+1], joinPointer(ptr, jsonKey(n.Content[i])))...)
		}
	case yaml.ScalarNode:
		var f float64
		if n.ShortTag() == "!!float" && n.Decode(&f) == nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
			errs = append(errs, &FieldError{Path: ptr, Line: n.Line,
				Message: n.Value + ": JSON has no infinity or NaN, so kubectl cannot read this document either"})
		}
	}
	return errs
}

// jsonKey is the JSON key kubectl makes of a mapping key.
func jsonKey(key *yaml.Node) string {
	if key.Kind != yaml.ScalarNode || key.Style != 0 {
		return key.Value // quoted or tagged: the text as written
	}
	return kubectlKey(key.Value)
}

// kubectlKey is the JSON key kubectl (sigs.k8s.io/yaml, YAML 1.1) makes of
// a bare key: on, yes and y become "true", 0x10 becomes "16".
func kubectlKey(s string) string {
	js, err := sigsyaml.YAMLToJSON([]byte(s))
	var v any
	if err != nil || json.Unmarshal(js, &v) != nil || v == nil {
		return s
	}
	if str, ok := v.(string); ok {
		return str
	}
	return string(js)
}

// lastLine is the number of the last line that has content.
func lastLine(data []byte) int {
	return bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n")) + 1
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

// parserProblems are the errors of the YAML library's parser (not its
// scanner), which it reports with a 0-based line number.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlErrors turns a YAML library error into FieldErrors with 1-based line
// numbers no greater than lastLine (an error at the end of the input is
// shown on its last line).
func yamlErrors(err error, lastLine int) ErrorList {
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
			if parserProblems[sub[2]] {
				fe.Line++
			}
			fe.Line = min(fe.Line, lastLine)
		}
		list = append(list, fe)
	}
	return list
}

// lineIndex maps JSON pointers to the line where that key or item starts.
type lineIndex map[string]int

func (l lineIndex) add(n *yaml.Node, ptr string) {
	// The document node sits on its "---" line; its content is more useful.
	if _, ok := l[ptr]; !ok && n.Kind != yaml.DocumentNode {
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
			p := joinPointer(ptr, jsonKey(key))
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
