package jsontemplate

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template/parse"
)

// Values are Go values: the data's own (map[string]any, []any, string,
// int64, float64, bool), the template's constants (int, float64,
// complex128, string, bool), and the builtins' results (int, bool, string,
// a byte indexed from a string). nil stands for text/template's "no
// value" as well as for JSON null: the two behave the same over JSON data.

// missingType marks an absent final argument: a command that is first in
// its pipeline receives none.
type missingType struct{}

var missing any = missingType{}

func isMissing(v any) bool { _, ok := v.(missingType); return ok }

// Limits on one rendering, so that a mistaken template cannot hold a
// worker: a selector value is a label value (63 characters at most).
const (
	maxIterations = 100_000        // range iterations, all ranges together
	maxOutput     = 1 << 20        // bytes of output, and of any string built
	maxBuilt      = 16 * maxOutput // bytes the builtins may build in one rendering, all together
	maxWidth      = 10_000         // a printf width or precision
)

// ErrTooLarge is returned when a rendering exceeds the limits above.
var ErrTooLarge = errors.New("template output or iterations over the limit")

// errBreak and errContinue end a range iteration; walkRange consumes them.
var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

type variable struct {
	name  string
	value any
}

type state struct {
	tree  *parse.Tree
	w     *strings.Builder
	vars  []variable
	steps int // range iterations so far
	built int // bytes the builtins built so far (estimated before each call)
}

func (s *state) errorf(n parse.Node, format string, args ...any) error {
	loc, ctx := s.tree.ErrorContext(n)
	return fmt.Errorf("template: %s: executing %q at <%s>: %w", loc, name, ctx, fmt.Errorf(format, args...))
}

func (s *state) mark() int            { return len(s.vars) }
func (s *state) pop(m int)            { s.vars = s.vars[:m] }
func (s *state) push(n string, v any) { s.vars = append(s.vars, variable{n, v}) }

func (s *state) setVar(n parse.Node, name string, v any) error {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			s.vars[i].value = v
			return nil
		}
	}
	return s.errorf(n, "undefined variable: %s", name)
}

func (s *state) varValue(n parse.Node, name string) (any, error) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return s.vars[i].value, nil
		}
	}
	return nil, s.errorf(n, "undefined variable: %s", name)
}

func (s *state) walk(dot any, node parse.Node) error {
	switch n := node.(type) {
	case *parse.ActionNode:
		// Variables declared here live until the end of the enclosing block.
		v, err := s.evalPipeline(dot, n.Pipe)
		if err != nil || len(n.Pipe.Decl) > 0 {
			return err
		}
		if v == nil {
			s.w.WriteString("<no value>")
		} else {
			fmt.Fprint(s.w, v)
		}
		if s.w.Len() > maxOutput {
			return s.errorf(n, "%w: more than %d bytes", ErrTooLarge, maxOutput)
		}
	case *parse.BreakNode:
		return errBreak
	case *parse.ContinueNode:
		return errContinue
	case *parse.CommentNode:
	case *parse.IfNode:
		return s.walkIfOrWith(false, dot, &n.BranchNode)
	case *parse.WithNode:
		return s.walkIfOrWith(true, dot, &n.BranchNode)
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if err := s.walk(dot, c); err != nil {
				return err
			}
		}
	case *parse.RangeNode:
		return s.walkRange(dot, n)
	case *parse.TextNode:
		s.w.Write(n.Text)
		if s.w.Len() > maxOutput {
			return s.errorf(n, "%w: more than %d bytes", ErrTooLarge, maxOutput)
		}
	default:
		return s.errorf(node, "unsupported node %s", node)
	}
	return nil
}

func (s *state) walkIfOrWith(with bool, dot any, b *parse.BranchNode) error {
	defer s.pop(s.mark())
	v, err := s.evalPipeline(dot, b.Pipe)
	if err != nil {
		return err
	}
	truth, ok := isTrue(v)
	if !ok {
		return s.errorf(b.Pipe, "if/with can't use %v", v)
	}
	switch {
	case truth && with:
		return s.walk(v, b.List)
	case truth:
		return s.walk(dot, b.List)
	case b.ElseList != nil:
		return s.walk(dot, b.ElseList)
	}
	return nil
}

// walkRange ranges as text/template does over JSON data: lists by index,
// maps in sorted key order, integers n as 0…n-1; nil and empty run else.
func (s *state) walkRange(dot any, r *parse.RangeNode) error {
	defer s.pop(s.mark())
	v, err := s.evalPipeline(dot, r.Pipe)
	if err != nil {
		return err
	}
	mark := s.mark()
	decl := r.Pipe.Decl
	one := func(index, elem any) error {
		if s.steps++; s.steps > maxIterations {
			return s.errorf(r, "%w: more than %d range iterations", ErrTooLarge, maxIterations)
		}
		if err := s.setRangeVars(r, index, elem); err != nil {
			return err
		}
		err := s.walk(elem, r.List)
		s.pop(mark)
		if err == errContinue {
			return nil
		}
		return err
	}
	ran, err := s.iterate(r, v, len(decl), one)
	if err == errBreak {
		return nil
	}
	if err != nil || ran || r.ElseList == nil {
		return err
	}
	// A break in the else list of a range inside another range ends this
	// range, not the outer one, as in text/template.
	if err := s.walk(dot, r.ElseList); err != errBreak {
		return err
	}
	return nil
}

// iterate calls one for each element of v; ran says whether there was one.
func (s *state) iterate(r *parse.RangeNode, v any, vars int, one func(index, elem any) error) (ran bool, err error) {
	if n, ok := intValue(v); ok {
		if vars > 1 {
			return false, s.errorf(r, "can't use %v to iterate over more than one variable", v)
		}
		for i := int64(0); i < n; i++ {
			if err := one(nil, sameInt(v, i)); err != nil {
				return true, err
			}
		}
		return n > 0, nil
	}
	switch v := v.(type) {
	case nil:
		return false, nil
	case []any:
		for i, e := range v {
			if err := one(i, e); err != nil {
				return true, err
			}
		}
		return len(v) > 0, nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := one(k, v[k]); err != nil {
				return true, err
			}
		}
		return len(v) > 0, nil
	}
	return false, s.errorf(r, "range can't iterate over %v", v)
}

// setRangeVars sets a range's variables for one iteration: with two, the
// index and the element; with one, the element.
func (s *state) setRangeVars(r *parse.RangeNode, index, elem any) error {
	decl := r.Pipe.Decl
	if len(decl) == 0 {
		return nil
	}
	if !r.Pipe.IsAssign {
		s.vars[len(s.vars)-1].value = elem
		if len(decl) > 1 {
			s.vars[len(s.vars)-2].value = index
		}
		return nil
	}
	if len(decl) == 1 {
		return s.setVar(r, decl[0].Ident[0], elem)
	}
	if err := s.setVar(r, decl[0].Ident[0], index); err != nil {
		return err
	}
	return s.setVar(r, decl[1].Ident[0], elem)
}

// evalPipeline evaluates a pipeline; its declared variables are pushed
// (or assigned) and stay until the caller pops them.
func (s *state) evalPipeline(dot any, pipe *parse.PipeNode) (any, error) {
	if pipe == nil {
		return nil, nil
	}
	v := missing
	for _, cmd := range pipe.Cmds {
		var err error
		if v, err = s.evalCommand(dot, cmd, v); err != nil {
			return nil, err
		}
	}
	for _, d := range pipe.Decl {
		if !pipe.IsAssign {
			s.push(d.Ident[0], v)
		} else if err := s.setVar(d, d.Ident[0], v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (s *state) notAFunction(args []parse.Node, final any) error {
	if len(args) > 1 || !isMissing(final) {
		return s.errorf(args[0], "can't give argument to non-function %s", args[0])
	}
	return nil
}

// evalCommand evaluates one command of a pipeline; final is the previous
// command's value (missing for the first), passed as the last argument.
func (s *state) evalCommand(dot any, cmd *parse.CommandNode, final any) (any, error) {
	switch n := cmd.Args[0].(type) {
	case *parse.FieldNode:
		return s.evalFieldChain(dot, dot, n, n.Ident, cmd.Args, final)
	case *parse.ChainNode:
		return s.evalChainNode(dot, n, cmd.Args, final)
	case *parse.IdentifierNode:
		return s.evalCall(dot, n.Ident, cmd, cmd.Args, final)
	case *parse.PipeNode:
		if err := s.notAFunction(cmd.Args, final); err != nil {
			return nil, err
		}
		return s.evalPipeline(dot, n)
	case *parse.VariableNode:
		return s.evalVariableNode(dot, n, cmd.Args, final)
	}
	if err := s.notAFunction(cmd.Args, final); err != nil {
		return nil, err
	}
	switch n := cmd.Args[0].(type) {
	case *parse.BoolNode:
		return n.True, nil
	case *parse.DotNode:
		return dot, nil
	case *parse.NilNode:
		return nil, s.errorf(n, "nil is not a command")
	case *parse.NumberNode:
		return s.idealConstant(n)
	case *parse.StringNode:
		return n.Text, nil
	}
	return nil, s.errorf(cmd.Args[0], "can't evaluate command %q", cmd.Args[0])
}

// idealConstant types a number constant by its syntax, as Go does.
func (s *state) idealConstant(n *parse.NumberNode) (any, error) {
	switch {
	case n.IsComplex:
		return n.Complex128, nil
	case n.IsFloat && !isHexInt(n.Text) && !isRuneInt(n.Text) && strings.ContainsAny(n.Text, ".eEpP"):
		return n.Float64, nil
	case n.IsInt:
		i := int(n.Int64)
		if int64(i) != n.Int64 {
			return nil, s.errorf(n, "%s overflows int", n.Text)
		}
		return i, nil
	case n.IsUint:
		return nil, s.errorf(n, "%s overflows int", n.Text)
	}
	return nil, nil
}

func isRuneInt(s string) bool { return len(s) > 0 && s[0] == '\'' }

func isHexInt(s string) bool {
	return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}

func (s *state) evalChainNode(dot any, chain *parse.ChainNode, args []parse.Node, final any) (any, error) {
	if len(chain.Field) == 0 {
		return nil, s.errorf(chain, "internal error: no fields in evalChainNode")
	}
	if chain.Node.Type() == parse.NodeNil {
		return nil, s.errorf(chain, "indirection through explicit nil in %s", chain)
	}
	v, err := s.evalArg(dot, argAny, chain.Node)
	if err != nil {
		return nil, err
	}
	return s.evalFieldChain(dot, v, chain, chain.Field, args, final)
}

func (s *state) evalVariableNode(dot any, n *parse.VariableNode, args []parse.Node, final any) (any, error) {
	v, err := s.varValue(n, n.Ident[0])
	if err != nil {
		return nil, err
	}
	if len(n.Ident) == 1 {
		if err := s.notAFunction(args, final); err != nil {
			return nil, err
		}
		return v, nil
	}
	return s.evalFieldChain(dot, v, n, n.Ident[1:], args, final)
}

// evalFieldChain evaluates .X.Y.Z on receiver; only the last field sees
// the command's arguments (an error: JSON data has no methods).
func (s *state) evalFieldChain(dot, receiver any, n parse.Node, ident []string, args []parse.Node, final any) (any, error) {
	var err error
	for _, f := range ident[:len(ident)-1] {
		if receiver, err = s.evalField(f, n, nil, missing, receiver); err != nil {
			return nil, err
		}
	}
	return s.evalField(ident[len(ident)-1], n, args, final, receiver)
}

// evalField looks a field up: a key of a map, with missingkey=error.
func (s *state) evalField(field string, n parse.Node, args []parse.Node, final, receiver any) (any, error) {
	switch r := receiver.(type) {
	case nil:
		return nil, s.errorf(n, "nil data; no entry for key %q", field)
	case map[string]any:
		if len(args) > 1 || !isMissing(final) {
			return nil, s.errorf(n, "%s is not a method but has arguments", field)
		}
		v, ok := r[field]
		if !ok {
			return nil, s.errorf(n, "map has no entry for key %q", field)
		}
		return v, nil
	}
	return nil, s.errorf(n, "can't evaluate field %s in type %T", field, receiver)
}
