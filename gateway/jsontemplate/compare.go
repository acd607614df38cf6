package jsontemplate

import (
	"errors"
	"fmt"
)

type kind int

const (
	invalidKind kind = iota // nil, lists, maps: no basic kind
	boolKind
	complexKind
	intKind
	floatKind
	stringKind
	uintKind
)

// number holds a basic value of each kind.
type number struct {
	b bool
	c complex128
	i int64
	f float64
	s string
	u uint64
}

var (
	errBadComparisonType = errors.New("invalid type for comparison")
	errNoComparison      = errors.New("missing argument for comparison")
)

// kindOf is text/template's basicKind: Go's integer types compare with
// each other whatever their size, so do its float types.
func kindOf(v any) (kind, number) {
	switch v := v.(type) {
	case bool:
		return boolKind, number{b: v}
	case int:
		return intKind, number{i: int64(v)}
	case int8:
		return intKind, number{i: int64(v)}
	case int16:
		return intKind, number{i: int64(v)}
	case int32:
		return intKind, number{i: int64(v)}
	case int64:
		return intKind, number{i: v}
	case uint:
		return uintKind, number{u: uint64(v)}
	case uint8:
		return uintKind, number{u: uint64(v)}
	case uint16:
		return uintKind, number{u: uint64(v)}
	case uint32:
		return uintKind, number{u: uint64(v)}
	case uint64:
		return uintKind, number{u: v}
	case float32:
		return floatKind, number{f: float64(v)}
	case float64:
		return floatKind, number{f: v}
	case complex128:
		return complexKind, number{c: v}
	case string:
		return stringKind, number{s: v}
	}
	return invalidKind, number{}
}

// eq reports whether a equals one of bs. Integers compare across
// signedness; values of different kinds are an error unless one is nil;
// lists and maps equal only nil, and only when empty of a value themselves.
func eq(a any, bs ...any) (bool, error) {
	if len(bs) == 0 {
		return false, errNoComparison
	}
	k1, n1 := kindOf(a)
	for _, b := range bs {
		k2, n2 := kindOf(b)
		t := false
		switch {
		case k1 == intKind && k2 == uintKind:
			t = n1.i >= 0 && uint64(n1.i) == n2.u
		case k1 == uintKind && k2 == intKind:
			t = n2.i >= 0 && n1.u == uint64(n2.i)
		case k1 != k2:
			if a != nil && b != nil {
				return false, fmt.Errorf("incompatible types for comparison: %T and %T", a, b)
			}
		case k1 == invalidKind:
			var err error
			if t, err = eqComposite(a, b); err != nil {
				return false, err
			}
		default:
			t = n1 == n2
		}
		if t {
			return true, nil
		}
	}
	return false, nil
}

// eqComposite compares values of no basic kind: nil, lists and maps.
func eqComposite(a, b any) (bool, error) {
	ca, cb := compositeOf(a), compositeOf(b)
	if ca != cb && a != nil && b != nil {
		return false, fmt.Errorf("non-comparable types %v: %T, %T: %v", a, a, b, b)
	}
	if isNil(a) || isNil(b) {
		return isNil(a) == isNil(b), nil
	}
	return false, fmt.Errorf("non-comparable type %v: %T", b, b)
}

// compositeOf names the reflect kind of a value of no basic kind.
func compositeOf(v any) string {
	switch v.(type) {
	case nil:
		return "invalid"
	case map[string]any:
		return "map"
	case []any:
		return "slice"
	}
	return fmt.Sprintf("%T", v)
}

func isNil(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case map[string]any:
		return v == nil
	case []any:
		return v == nil
	}
	return false
}

// lt reports a < b for integers, floats and strings.
func lt(a, b any) (bool, error) {
	k1, n1 := kindOf(a)
	if k1 == invalidKind {
		return false, errBadComparisonType
	}
	k2, n2 := kindOf(b)
	if k2 == invalidKind {
		return false, errBadComparisonType
	}
	switch {
	case k1 == intKind && k2 == uintKind:
		return n1.i < 0 || uint64(n1.i) < n2.u, nil
	case k1 == uintKind && k2 == intKind:
		return n2.i >= 0 && n1.u < uint64(n2.i), nil
	case k1 != k2:
		return false, fmt.Errorf("incompatible types for comparison: %T and %T", a, b)
	}
	switch k1 {
	case floatKind:
		return n1.f < n2.f, nil
	case intKind:
		return n1.i < n2.i, nil
	case stringKind:
		return n1.s < n2.s, nil
	case uintKind:
		return n1.u < n2.u, nil
	}
	return false, errBadComparisonType
}

// le is lt or eq.
func le(a, b any) (bool, error) {
	l, err := lt(a, b)
	if l || err != nil {
		return l, err
	}
	return eq(a, b)
}
