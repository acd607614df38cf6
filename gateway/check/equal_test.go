package check

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// oldEqual is how the engine compared statuses before EqualJSON: both
// through a JSON round trip into float64 numbers.
func oldEqual(a, b any) bool { return reflect.DeepEqual(roundTrip(a), roundTrip(b)) }

func TestEqualJSONEqualsTheRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		a, b any
	}{
		{"nil and nil map", nil, map[string]any(nil)},
		{"nil map and empty map", map[string]any(nil), map[string]any{}},
		{"nil list and empty list", map[string]any{"l": []any(nil)}, map[string]any{"l": []any{}}},
		{"int64 and float64 of one number", map[string]any{"n": int64(3)}, map[string]any{"n": 3.0}},
		{"different numbers", map[string]any{"n": int64(3)}, map[string]any{"n": 3.5}},
		{"int64s one float64 apart", int64(1<<53 + 1), int64(1 << 53)},
		{"minus zero", math.Copysign(0, -1), int64(0)},
		{"number and string", map[string]any{"n": int64(3)}, map[string]any{"n": "3"}},
		{"bools", []any{true, false}, []any{true, false}},
		{"lists of other lengths", []any{"a"}, []any{"a", "b"}},
		{"maps with other keys", map[string]any{"a": "x"}, map[string]any{"b": "x"}},
		{"nested", map[string]any{"o": map[string]any{"l": []any{int64(1), map[string]any{"x": nil}}}}, map[string]any{"o": map[string]any{"l": []any{1.0, map[string]any{"x": nil}}}}},
		{"nested differ deep", map[string]any{"o": []any{map[string]any{"x": "1"}}}, map[string]any{"o": []any{map[string]any{"x": "2"}}}},
		{"invalid UTF-8 keys that collapse", map[string]any{"\xff": "a", "\xfe": "a"}, map[string]any{"\ufffd": "a"}},
		{"invalid UTF-8 strings", "a\xff", "a\ufffd"},
		{"types only the round trip knows", map[string]any{"l": []string{"a"}}, map[string]any{"l": []any{"a"}}},
		{"int and float64", 3, 3.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := EqualJSON(tt.a, tt.b), oldEqual(tt.a, tt.b); got != want {
				t.Errorf("EqualJSON(%#v, %#v) = %v, the round trip says %v", tt.a, tt.b, got, want)
			}
		})
	}
}

// FuzzEqualJSON: for statuses decoded as the cache holds them (int64) and
// as a handler's answer is (float64), EqualJSON agrees with the round trip.
func FuzzEqualJSON(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,2.5,{"c":null}]}`), []byte(`{"a":1.0,"b":[1,2.5,{"c":null}]}`))
	f.Add([]byte(`{"n":9007199254740993}`), []byte(`{"n":9007199254740992}`))
	f.Fuzz(func(t *testing.T, x, y []byte) {
		var a, b any
		if utiljson.Unmarshal(x, &a) != nil || json.Unmarshal(y, &b) != nil {
			return
		}
		if got, want := EqualJSON(a, b), oldEqual(a, b); got != want {
			t.Fatalf("EqualJSON(%s, %s) = %v, the round trip says %v", x, y, got, want)
		}
	})
}
