package jsontemplate

import (
	"fmt"
	"text/template/parse"
)

// argType is what a builtin's parameter accepts, as text/template
// converts arguments to the Go parameter types of its builtins.
type argType int

const (
	argAny    argType = iota // any or reflect.Value: every value, nil included
	argString                // string: printf's format
)

// signature is a builtin's parameter list: fixed parameters, then, when
// variadic, any number of variadic ones.
type signature struct {
	fixed    []argType
	variadic bool
}

type builtin struct {
	sig signature
	fn  func(args []any) (any, error)
}

var (
	one       = signature{fixed: []argType{argAny}}
	two       = signature{fixed: []argType{argAny, argAny}}
	oneOrMore = signature{fixed: []argType{argAny}, variadic: true}
	anyNumber = signature{variadic: true}
)

// builtins are text/template's, but for call, which Parse refuses.
// and and or are evaluated in evalCall: they do not evaluate every argument.
var builtins = map[string]builtin{
	"and":      {sig: oneOrMore},
	"or":       {sig: oneOrMore},
	"not":      {one, func(a []any) (any, error) { return !truth(a[0]), nil }},
	"len":      {one, length},
	"index":    {oneOrMore, index},
	"slice":    {oneOrMore, slice},
	"print":    {anyNumber, func(a []any) (any, error) { return fmt.Sprint(a...), nil }},
	"println":  {anyNumber, func(a []any) (any, error) { return fmt.Sprintln(a...), nil }},
	"printf":   {signature{fixed: []argType{argString}, variadic: true}, printf},
	"html":     {anyNumber, func(a []any) (any, error) { return htmlEscape(evalArgs(a)), nil }},
	"js":       {anyNumber, func(a []any) (any, error) { return jsEscape(evalArgs(a)), nil }},
	"urlquery": {anyNumber, func(a []any) (any, error) { return urlQueryEscape(evalArgs(a)), nil }},
	"eq":       {oneOrMore, func(a []any) (any, error) { return eq(a[0], a[1:]...) }},
	"ne":       {two, func(a []any) (any, error) { e, err := eq(a[0], a[1]); return !e, err }},
	"lt":       {two, func(a []any) (any, error) { return lt(a[0], a[1]) }},
	"le":       {two, func(a []any) (any, error) { return le(a[0], a[1]) }},
	"gt":       {two, func(a []any) (any, error) { l, err := le(a[0], a[1]); return !l && err == nil, err }},
	"ge":       {two, func(a []any) (any, error) { l, err := lt(a[0], a[1]); return !l && err == nil, err }},
}

func printf(a []any) (any, error) { return fmt.Sprintf(a[0].(string), a[1:]...), nil }

// evalCall calls the builtin name. args, when not nil, starts with the
// function's own node; final, when not missing, is the last argument.
func (s *state) evalCall(dot any, name string, node parse.Node, args []parse.Node, final any) (any, error) {
	b, ok := builtins[name]
	if !ok {
		return nil, s.errorf(node, "%q is not a defined function", name)
	}
	if args != nil {
		args = args[1:]
	}
	numIn := len(args)
	if !isMissing(final) {
		numIn++
	}
	if b.sig.variadic {
		if numIn < len(b.sig.fixed) {
			return nil, s.errorf(node, "wrong number of args for %s: want at least %d got %d", name, len(b.sig.fixed), len(args))
		}
	} else if numIn != len(b.sig.fixed) {
		return nil, s.errorf(node, "wrong number of args for %s: want %d got %d", name, len(b.sig.fixed), numIn)
	}
	if name == "and" || name == "or" {
		return s.andOr(dot, name == "or", args, final)
	}
	argv := make([]any, numIn)
	i := 0
	for ; i < len(args); i++ {
		t := argAny
		if i < len(b.sig.fixed) {
			t = b.sig.fixed[i]
		}
		v, err := s.evalArg(dot, t, args[i])
		if err != nil {
			return nil, err
		}
		argv[i] = v
	}
	if !isMissing(final) {
		t := argAny
		if i < len(b.sig.fixed) {
			t = b.sig.fixed[i]
		}
		v, err := s.validateType(node, final, t)
		if err != nil {
			return nil, err
		}
		argv[i] = v
	}
	if err := s.spend(name, argv); err != nil {
		return nil, s.errorf(node, "%w", err)
	}
	v, err := b.fn(argv)
	if err != nil {
		return nil, s.errorf(node, "error calling %s: %w", name, err)
	}
	if str, ok := v.(string); ok && len(str) > maxOutput {
		return nil, s.errorf(node, "%w: %s built more than %d bytes", ErrTooLarge, name, maxOutput)
	}
	return v, nil
}

// andOr returns the first argument that decides (false for and, true for
// or) without evaluating the rest, else the last one.
func (s *state) andOr(dot any, or bool, args []parse.Node, final any) (any, error) {
	var v any
	for _, a := range args {
		var err error
		if v, err = s.evalArg(dot, argAny, a); err != nil {
			return nil, err
		}
		if truth(v) == or {
			return v, nil
		}
	}
	if !isMissing(final) {
		v = final
	}
	return v, nil
}

// validateType checks that v can be passed as a parameter of type t.
func (s *state) validateType(n parse.Node, v any, t argType) (any, error) {
	if t == argString {
		str, ok := v.(string)
		if !ok {
			if v == nil {
				return nil, s.errorf(n, "invalid value; expected string")
			}
			return nil, s.errorf(n, "wrong type for value; expected string; got %T", v)
		}
		return str, nil
	}
	return v, nil
}

// evalArg evaluates an argument of a function, or the head of a chain.
func (s *state) evalArg(dot any, t argType, n parse.Node) (any, error) {
	var v any
	var err error
	switch n := n.(type) {
	case *parse.DotNode:
		return s.validateType(n, dot, t)
	case *parse.NilNode:
		if t == argString {
			return nil, s.errorf(n, "cannot assign nil to string")
		}
		return nil, nil
	case *parse.FieldNode:
		v, err = s.evalFieldChain(dot, dot, n, n.Ident, []parse.Node{n}, missing)
	case *parse.VariableNode:
		v, err = s.evalVariableNode(dot, n, nil, missing)
	case *parse.PipeNode:
		v, err = s.evalPipeline(dot, n)
	case *parse.IdentifierNode:
		v, err = s.evalCall(dot, n.Ident, n, nil, missing)
	case *parse.ChainNode:
		v, err = s.evalChainNode(dot, n, nil, missing)
	case *parse.StringNode:
		return n.Text, nil
	case *parse.BoolNode:
		if t == argString {
			return nil, s.errorf(n, "expected string; found %s", n)
		}
		return n.True, nil
	case *parse.NumberNode:
		if t == argString {
			return nil, s.errorf(n, "expected string; found %s", n)
		}
		return s.idealConstant(n)
	default:
		return nil, s.errorf(n, "can't handle %s for arg", n)
	}
	if err != nil {
		return nil, err
	}
	return s.validateType(n, v, t)
}
