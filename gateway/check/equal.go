package check

import (
	"encoding/json"
	"reflect"
	"unicode/utf8"
)

// EqualJSON says whether a and b encode to the same JSON value, numbers
// compared as encoding/json decodes them (float64), so int64(3) and 3.0 are
// equal. Values of the types a JSON decoder produces are compared in
// place; anything else is compared on a round trip through JSON.
func EqualJSON(a, b any) bool {
	if eq, ok := equalDecoded(a, b); ok {
		return eq
	}
	return reflect.DeepEqual(roundTrip(a), roundTrip(b))
}

func roundTrip(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return v
	}
	return out
}

// equalDecoded compares a and b when both hold only decoder types; ok is
// false when it cannot tell.
func equalDecoded(a, b any) (eq, ok bool) {
	a, b = nullOf(a), nullOf(b)
	switch x := a.(type) {
	case nil:
		return b == nil, known(b)
	case string:
		y, same := b.(string)
		if !utf8.ValidString(x) || (same && !utf8.ValidString(y)) {
			return false, false
		}
		return same && x == y, known(b)
	case bool:
		y, same := b.(bool)
		return same && x == y, known(b)
	case int64, float64:
		fx, _ := asFloat(x)
		fy, same := asFloat(b)
		return same && fx == fy, known(b)
	case map[string]any:
		y, same := b.(map[string]any)
		if !same {
			return false, known(b)
		}
		// Invalid UTF-8 keys may become one key in JSON.
		if !validKeys(x) || !validKeys(y) {
			return false, false
		}
		if len(x) != len(y) {
			return false, true
		}
		for k, vx := range x {
			vy, found := y[k]
			if !found {
				return false, true
			}
			if eq, ok := equalDecoded(vx, vy); !ok || !eq {
				return eq, ok
			}
		}
		return true, true
	case []any:
		y, same := b.([]any)
		if !same {
			return false, known(b)
		}
		if len(x) != len(y) {
			return false, true
		}
		for i := range x {
			if eq, ok := equalDecoded(x[i], y[i]); !ok || !eq {
				return eq, ok
			}
		}
		return true, true
	}
	return false, false
}

func validKeys(m map[string]any) bool {
	for k := range m {
		if !utf8.ValidString(k) {
			return false
		}
	}
	return true
}

// nullOf makes nil maps and lists the null they encode as.
func nullOf(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return nil
		}
	case []any:
		if x == nil {
			return nil
		}
	}
	return v
}

// known says whether v is of a type equalDecoded compares; of a map or a
// list only the top is looked at, their insides say for themselves.
func known(v any) bool {
	switch x := v.(type) {
	case nil, bool, int64, float64, map[string]any, []any:
		return true
	case string:
		return utf8.ValidString(x)
	}
	return false
}

// asFloat is the float64 a number decodes to after json.Marshal: int64
// digits parse to the nearest float64, as the conversion rounds.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
