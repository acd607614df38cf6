package check

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// mergeCases are merges whose result the direct merge must share with the
// library's: RFC 7386 and the library's ways with nulls, and every number
// form a JSON round trip changes.
var mergeCases = []struct {
	name          string
	target, patch map[string]any
}{
	{"both empty", map[string]any{}, map[string]any{}},
	{"nil target", nil, map[string]any{"a": 1.0}},
	{"null deletes", map[string]any{"a": "x", "b": "y"}, map[string]any{"a": nil, "missing": nil}},
	{"objects merge deeply", map[string]any{"o": map[string]any{"a": 1.0, "b": map[string]any{"c": "d"}}}, map[string]any{"o": map[string]any{"b": map[string]any{"e": "f", "c": nil}}}},
	{"an object replacing a scalar loses its nulls", map[string]any{"a": "x"}, map[string]any{"a": map[string]any{"b": nil, "c": map[string]any{"d": nil, "e": 1.0}}}},
	{"an object replacing null or nothing loses its nulls", map[string]any{"a": nil}, map[string]any{"a": map[string]any{"b": nil}, "n": map[string]any{"m": nil}}},
	{"a list replacing an object keeps the nulls of its objects", map[string]any{"a": map[string]any{"x": 1.0}}, map[string]any{"a": []any{map[string]any{"y": nil}, nil}}},
	{"a list replacing a scalar loses the nulls of its objects, not its null elements", map[string]any{"a": "s"}, map[string]any{"a": []any{map[string]any{"y": nil, "z": []any{map[string]any{"q": nil}}}, nil}}},
	{"a scalar replaces an object", map[string]any{"a": map[string]any{"x": 1.0}}, map[string]any{"a": "flat"}},
	{"numbers", map[string]any{"i": int64(3), "f": 1.5, "n": int64(-7)},
		map[string]any{"three": 3.0, "zero": math.Copysign(0, -1), "big": 1e20, "bigger": 1e21, "edge": 9.223372036854775807e18, "min": -9.223372036854775808e18, "2^60": 1152921504606846976.0, "2^53+2": 9007199254740994.0, "-2^53": -9007199254740992.0,
			"tiny": 1e-7, "frac": -2.25, "int": 5, "int32": int32(6), "deep": []any{1.0, []any{2.5, map[string]any{"x": 4.0}}}}},
	{"strings and escapes", map[string]any{"s": "<a>&\u2028"}, map[string]any{"t": "café \"q\"", "u": ""}},
	{"bools", map[string]any{"t": true}, map[string]any{"f": false, "t": nil}},
	{"typed nil maps and lists are null", map[string]any{"m": map[string]any(nil)}, map[string]any{"l": []any(nil), "n": map[string]any(nil), "o": map[string]any{"p": map[string]any(nil)}}},
	{"types only the round trip knows", map[string]any{"s": []string{"a"}}, map[string]any{"m": map[string]string{"k": "v"}, "u": uint64(math.MaxUint64)}},
	{"invalid UTF-8 is replaced as the round trip does", map[string]any{"s": "a\xffb"}, map[string]any{"k\xfe": "v"}},
}

// The direct merge gives what the API server's merge-patch library gives on
// the JSON encodings, value types included, and changes neither input.
func TestMergePatchEqualsTheLibrary(t *testing.T) {
	for _, tt := range mergeCases {
		t.Run(tt.name, func(t *testing.T) {
			targetBefore, patchBefore := copyKeepingNil(tt.target), copyKeepingNil(tt.patch)
			want, wantErr := mergePatchJSON(orEmpty(tt.target), tt.patch)
			got, err := mergePatch(tt.target, tt.patch)
			if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
				t.Errorf("mergePatch = %#v, %v\nlibrary gives %#v, %v", got, err, want, wantErr)
			}
			if !reflect.DeepEqual(any(tt.target), targetBefore) || !reflect.DeepEqual(any(tt.patch), patchBefore) {
				t.Errorf("mergePatch modified its inputs: %#v, %#v", tt.target, tt.patch)
			}
		})
	}
}

// A value JSON cannot hold is refused as before.
func TestMergePatchRefusesNaN(t *testing.T) {
	if _, err := mergePatch(map[string]any{"a": math.NaN()}, map[string]any{}); err == nil {
		t.Error("a NaN in the current status was accepted")
	}
	if _, err := mergePatch(nil, map[string]any{"a": math.Inf(1)}); err == nil {
		t.Error("an infinite number in the patch was accepted")
	}
	if _, err := normalizeJSON(map[string]any{"a": math.NaN()}); err == nil {
		t.Error("normalizeJSON accepted a NaN")
	}
}

// copyKeepingNil deep-copies maps and lists, keeping nil ones nil.
func copyKeepingNil(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = copyKeepingNil(e)
		}
		return out
	case []any:
		if v == nil {
			return v
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyKeepingNil(e)
		}
		return out
	}
	return v
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// FuzzMergePatch: for any current status (decoded as the API server's
// decoder does) and any patch (decoded as a handler's answer is), the
// direct merge equals the library's.
func FuzzMergePatch(f *testing.F) {
	for _, tt := range mergeCases {
		target, err1 := json.Marshal(tt.target)
		patch, err2 := json.Marshal(tt.patch)
		if err1 == nil && err2 == nil {
			f.Add(target, patch)
		}
	}
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		var cur, p map[string]any
		if utiljson.Unmarshal(target, &cur) != nil || json.Unmarshal(patch, &p) != nil || p == nil {
			return
		}
		want, wantErr := mergePatchJSON(orEmpty(cur), p)
		got, err := mergePatch(cur, p)
		if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("mergePatch(%s, %s) = %#v, %v\nlibrary gives %#v, %v", target, patch, got, err, want, wantErr)
		}
	})
}
