package jsontemplate

import (
	"errors"
	"fmt"
	"math"
)

// isTrue is text/template's truth: not the zero value of its type. ok is
// false for a value without a truth value.
func isTrue(v any) (truth, ok bool) {
	if n, ok := intValue(v); ok {
		return n != 0, true
	}
	switch v := v.(type) {
	case nil:
		return false, true
	case bool:
		return v, true
	case string:
		return v != "", true
	case map[string]any:
		return len(v) > 0, true
	case []any:
		return len(v) > 0, true
	case float64:
		return v != 0, true
	case float32:
		return v != 0, true
	case complex128:
		return v != 0, true
	case uint64:
		return v != 0, true
	case uint:
		return v != 0, true
	}
	return false, false
}

func truth(v any) bool { t, _ := isTrue(v); return t }

// intValue returns a signed or small unsigned integer as int64.
func intValue(v any) (int64, bool) {
	switch v := v.(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint:
		if uint64(v) <= math.MaxInt64 {
			return int64(v), true
		}
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	}
	return 0, false
}

// sameInt returns i in the integer type of like, as ranging over an
// integer yields values of its type.
func sameInt(like any, i int64) any {
	switch like.(type) {
	case int64:
		return i
	case int32:
		return int32(i)
	case int16:
		return int16(i)
	case int8:
		return int8(i)
	case uint8:
		return uint8(i)
	case uint16:
		return uint16(i)
	case uint32:
		return uint32(i)
	case uint:
		return uint(i)
	case uint64:
		return uint64(i)
	}
	return int(i)
}

func length(a []any) (any, error) {
	switch v := a[0].(type) {
	case nil:
		return nil, errors.New("len of untyped nil")
	case string:
		return len(v), nil
	case map[string]any:
		return len(v), nil
	case []any:
		return len(v), nil
	}
	return nil, fmt.Errorf("len of type %T", a[0])
}

// indexArg returns an integer index no greater than limit.
func indexArg(v any, limit int) (int, error) {
	var x int64
	switch k, n := kindOf(v); k {
	case intKind:
		x = n.i
	case uintKind:
		x = int64(n.u)
	case invalidKind:
		if v == nil {
			return 0, errors.New("cannot index slice/array with nil")
		}
		return 0, fmt.Errorf("cannot index slice/array with type %T", v)
	default:
		return 0, fmt.Errorf("cannot index slice/array with type %T", v)
	}
	if x < 0 || int(x) < 0 || int(x) > limit {
		return 0, fmt.Errorf("index out of range: %d", x)
	}
	return int(x), nil
}

// index is item[i][j]…: lists and strings by integer, maps by string key
// (a missing key gives no value, not an error, as in text/template).
func index(a []any) (any, error) {
	item := a[0]
	if item == nil {
		return nil, errors.New("index of untyped nil")
	}
	for _, ix := range a[1:] {
		switch v := item.(type) {
		case nil:
			return nil, errors.New("index of nil pointer")
		case []any:
			x, err := indexArg(ix, len(v))
			if err != nil {
				return nil, err
			}
			if x >= len(v) {
				return nil, fmt.Errorf("index out of range: %d", x)
			}
			item = v[x]
		case string:
			x, err := indexArg(ix, len(v))
			if err != nil {
				return nil, err
			}
			if x >= len(v) {
				return nil, fmt.Errorf("index out of range: %d", x)
			}
			item = v[x]
		case map[string]any:
			k, ok := ix.(string)
			if !ok {
				if ix == nil {
					return nil, errors.New("value is nil; should be of type string")
				}
				return nil, fmt.Errorf("value has type %T; should be string", ix)
			}
			item = v[k]
		default:
			return nil, fmt.Errorf("can't index item of type %T", item)
		}
	}
	return item, nil
}

// slice is item[i:j:k] over a list or a string, bounded by the list's
// capacity as Go's slicing is.
func slice(a []any) (any, error) {
	item, ixs := a[0], a[1:]
	if item == nil {
		return nil, errors.New("slice of untyped nil")
	}
	if len(ixs) > 3 {
		return nil, fmt.Errorf("too many slice indexes: %d", len(ixs))
	}
	var n, limit int
	switch v := item.(type) {
	case string:
		if len(ixs) == 3 {
			return nil, errors.New("cannot 3-index slice a string")
		}
		n, limit = len(v), len(v)
	case []any:
		n, limit = len(v), cap(v)
	default:
		return nil, fmt.Errorf("can't slice item of type %T", item)
	}
	idx := [3]int{0, n}
	for i, ix := range ixs {
		x, err := indexArg(ix, limit)
		if err != nil {
			return nil, err
		}
		idx[i] = x
	}
	if idx[0] > idx[1] {
		return nil, fmt.Errorf("invalid slice index: %d > %d", idx[0], idx[1])
	}
	if len(ixs) == 3 && idx[1] > idx[2] {
		return nil, fmt.Errorf("invalid slice index: %d > %d", idx[1], idx[2])
	}
	if s, ok := item.(string); ok {
		return s[idx[0]:idx[1]], nil
	}
	if len(ixs) == 3 {
		return item.([]any)[idx[0]:idx[1]:idx[2]], nil
	}
	return item.([]any)[idx[0]:idx[1]], nil
}

// evalArgs is fmt.Sprint of the arguments, with "no value" (nil) printed
// as an action prints it, as the html, js and urlquery builtins do.
func evalArgs(args []any) string {
	if len(args) == 1 {
		if s, ok := args[0].(string); ok {
			return s
		}
	}
	a := make([]any, len(args))
	for i, v := range args {
		if v == nil {
			v = "<no value>"
		}
		a[i] = v
	}
	return fmt.Sprint(a...)
}
