// Package jsontemplate runs Go templates (the text/template language) over
// JSON-shaped data: map[string]any, []any, string, int64, float64, bool and
// nil, as encoding/json and Kubernetes' unstructured objects hold them.
//
// It parses with text/template/parse and evaluates the tree itself, with
// text/template's semantics and missingkey=error, but without reflection.
// text/template looks methods up by name at run time, which makes the Go
// linker keep every exported method of every type in the binary; JSON data
// has no methods, so nothing is lost by not looking. What cannot apply to
// JSON data is refused by Parse: the call function (JSON holds no function
// values) and named templates (define, template, block).
package jsontemplate

import (
	"fmt"
	"slices"
	"strings"
	"text/template/parse"
)

// name is the template's name in error messages, as text/template names
// the template the engine used to create.
const name = "selector"

// Template is a parsed template, safe for concurrent use.
type Template struct {
	tree *parse.Tree
}

// functions are text/template's builtins, so that the parser accepts and
// refuses the same names. call is parsed to be refused with a clear error.
var functions = map[string]any{
	"and": true, "or": true, "not": true, "len": true, "index": true, "slice": true,
	"print": true, "printf": true, "println": true, "html": true, "js": true, "urlquery": true,
	"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true, "call": true,
}

// Parse parses text as a Go template, refusing what cannot run over JSON
// data. Errors name the construct and its position.
func Parse(text string) (*Template, error) {
	t := parse.New(name)
	sets := map[string]*parse.Tree{}
	if _, err := t.Parse(text, "", "", sets, functions); err != nil {
		return nil, err
	}
	var defined []string
	for n, tr := range sets {
		if tr != t {
			defined = append(defined, n)
		}
	}
	if len(defined) > 0 {
		slices.Sort(defined)
		return nil, fmt.Errorf("template: %s: {{define %q}}: named templates (define, block, template) are not supported: a selector value is a single template", name, defined[0])
	}
	if err := refuse(t, t.Root); err != nil {
		return nil, err
	}
	return &Template{tree: t}, nil
}

// Render executes the template over data, which must be JSON-shaped (see
// the package comment), and returns its output.
func (t *Template) Render(data any) (string, error) {
	var b strings.Builder
	s := &state{tree: t.tree, w: &b, vars: []variable{{"$", data}}}
	if err := s.walk(data, t.tree.Root); err != nil {
		return "", err
	}
	return b.String(), nil
}

// refuse returns an error for the first construct under n that cannot
// apply to JSON data.
func refuse(t *parse.Tree, n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := refuse(t, c); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return refuse(t, n.Pipe)
	case *parse.IfNode:
		return refuseBranch(t, &n.BranchNode)
	case *parse.WithNode:
		return refuseBranch(t, &n.BranchNode)
	case *parse.RangeNode:
		return refuseBranch(t, &n.BranchNode)
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := refuse(t, c); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if err := refuse(t, a); err != nil {
				return err
			}
		}
	case *parse.ChainNode:
		return refuse(t, n.Node)
	case *parse.IdentifierNode:
		if n.Ident == "call" {
			loc, _ := t.ErrorContext(n)
			return fmt.Errorf("template: %s: the call function is not supported: it calls a function value, and JSON data holds none", loc)
		}
	case *parse.TemplateNode:
		loc, _ := t.ErrorContext(n)
		return fmt.Errorf("template: %s: {{template %q}}: named templates (define, block, template) are not supported: a selector value is a single template", loc, n.Name)
	}
	return nil
}

func refuseBranch(t *parse.Tree, b *parse.BranchNode) error {
	for _, n := range []parse.Node{b.Pipe, b.List, b.ElseList} {
		if err := refuse(t, n); err != nil {
			return err
		}
	}
	return nil
}
