package spec

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

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
