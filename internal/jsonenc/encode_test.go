package jsonenc

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	kjson "sigs.k8s.io/json"
)

// matchesEncodingJSON checks Marshal against json.Marshal: the same bytes,
// or an error where it errs.
func matchesEncodingJSON(t *testing.T, v any) {
	t.Helper()
	want, werr := json.Marshal(v)
	got, gerr := Marshal(v)
	switch {
	case (gerr == nil) != (werr == nil):
		t.Fatalf("%#v: error %v, encoding/json's %v", v, gerr, werr)
	case gerr == nil && !bytes.Equal(got, want):
		t.Fatalf("%#v:\n%s\nencoding/json:\n%s", v, got, want)
	}
}

// decodedBothWays is raw decoded as encoding/json does (numbers as
// float64) and as Unstructured does (integers as int64).
func decodedBothWays(raw []byte) []any {
	var out []any
	var plain any
	if json.Unmarshal(raw, &plain) == nil {
		out = append(out, plain)
	}
	var ints any
	if kjson.UnmarshalCaseSensitivePreserveInts(raw, &ints) == nil {
		out = append(out, ints)
	}
	return out
}

var documents = []string{
	`null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `9223372036854775807`, `-9223372036854775808`,
	`9223372036854775808`, `1.5`, `-2.25`, `1e20`, `1e21`, `123456789012345678901234`, `1e-6`, `1e-7`,
	`0.000001`, `0.0000001`, `1.7976931348623157e308`, `5e-324`, `3.0`, `100`, `1E+2`,
	`""`, `"plain"`, `"<b>&amp;</b>"`, `"quote \" backslash \\ slash \/"`, `"\b\f\n\r\t\u0000\u001f\u007f"`,
	`"\u2028\u2029 line seps"`, `"\ud83d\ude00 é 日本"`, `"\ud800 lone surrogate"`,
	`{}`, `[]`, `{"b":1,"a":2,"A":3,"":4,"é":5,"<":6}`, `{"\uff00":1,"\ud83d\ude00":2,"\ufffd":3,"z":4}`, `[1,"two",null,{"x":[]},[[]]]`,
	`{"spec":{"size":3},"metadata":{"labels":{"app":"mc"},"annotations":{"a/b":"c"}}}`,
	`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"mc-1","ownerReferences":[{"controller":true,"uid":"u"}]},"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"m","image":"memcached:1.6","resources":{"limits":{"cpu":"100m"}}}]}}}}`,
}

func TestMarshalWritesWhatEncodingJSONWrites(t *testing.T) {
	for _, doc := range documents {
		values := decodedBothWays([]byte(doc))
		if len(values) == 0 {
			t.Fatalf("%s: not JSON", doc)
		}
		for _, v := range values {
			matchesEncodingJSON(t, v)
		}
	}
	// Values no decoding yields, which the encoder must still write as
	// encoding/json does.
	for _, v := range []any{
		"\xff invalid \xc3 UTF-8", map[string]any{"\xfe": "\u2028"}, map[string]any(nil), []any(nil),
		map[string]any{"n": nil, "m": map[string]any(nil), "a": []any(nil)},
		int(-7), int32(5), float32(0.1), uint64(math.MaxUint64), json.Number("12.5"),
		map[string]string{"typed": "map"}, []string{"typed", "slice"}, struct{ A int }{1},
		map[string]string(nil), []string(nil), map[string]string{}, []string{},
		map[string]any{"labels": map[string]string{"b": "<&>", "a": "\xff", "": "\u2028"}, "finalizers": []string{"x/y", "\n"}},
		math.Copysign(0, -1), math.Inf(1), math.NaN(), map[string]any{"x": math.Inf(-1)}, []any{math.NaN()},
		map[string]any{"ch": make(chan int)},
	} {
		matchesEncodingJSON(t, v)
	}
	// Deeper than maxDepth, and a map that contains itself: encoding/json
	// writes the first and refuses the second; plain recursion would not
	// end on it.
	deep := any("bottom")
	for i := range 3 * maxDepth {
		if i%2 == 0 {
			deep = map[string]any{"d": deep}
		} else {
			deep = []any{deep}
		}
	}
	matchesEncodingJSON(t, deep)
	cyclic := map[string]any{}
	cyclic["self"] = []any{cyclic}
	matchesEncodingJSON(t, cyclic)
}

// TestMarshalWritesTheBytesDigestsWereTakenOf pins the bytes themselves,
// not only their agreement with the encoding/json of the day: digests of
// them are kept in objects, so a toolchain whose encoding/json writes
// otherwise must not move them.
func TestMarshalWritesTheBytesDigestsWereTakenOf(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{map[string]any{"z": "<a&b>", "a": "\b\f\x00\x7f\u2028\u2029", "é": "\xff", "\uff00": 1, "😀": 2}, `{"a":"\b\f\u0000` + "\x7f" + `\u2028\u2029","z":"\u003ca\u0026b\u003e","é":"\ufffd","＀":1,"😀":2}`},
		{[]any{math.Copysign(0, -1), 1e21, 999999999999999999999.0, 1e-7, 5e-324, 0.000001, 1e20, int64(-9223372036854775808), 1.5}, `[-0,1e+21,1e+21,1e-7,5e-324,0.000001,100000000000000000000,-9223372036854775808,1.5]`},
		{map[string]any{"n": nil, "m": map[string]any(nil), "a": []any(nil), "e": map[string]any{}, "l": []any{}, "t": true}, `{"a":null,"e":{},"l":[],"m":null,"n":null,"t":true}`},
	} {
		got, err := Marshal(tt.v)
		if err != nil || string(got) != tt.want {
			t.Errorf("%#v:\n%s (%v)\nwant\n%s", tt.v, got, err, tt.want)
		}
	}
	if got, err := Marshal([]any{"a", math.Inf(1)}); got != nil || err == nil {
		t.Errorf("an infinity: %q, %v; want nil and an error", got, err)
	} else if _, ok := err.(*json.UnsupportedValueError); !ok {
		t.Errorf("an infinity: %T, want *json.UnsupportedValueError as encoding/json returns", err)
	}
}

func FuzzMarshalWritesWhatEncodingJSONWrites(f *testing.F) {
	for _, doc := range documents {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, v := range decodedBothWays(raw) {
			matchesEncodingJSON(t, v)
		}
		// Strings as they are, invalid UTF-8 included, and keys to sort.
		s := string(raw)
		matchesEncodingJSON(t, s)
		matchesEncodingJSON(t, map[string]any{s: s, s[:len(s)/2]: 1.5, "\uff00": nil, "😀": true, "\ufffd": []any{s}})
		matchesEncodingJSON(t, map[string]any{"m": map[string]string{s: s, s[len(s)/2:]: "<"}, "l": []string{s, s[:len(s)/2]}})
	})
}

func BenchmarkMarshalDeployment(b *testing.B) {
	var v any
	if err := kjson.UnmarshalCaseSensitivePreserveInts([]byte(documents[len(documents)-1]), &v); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		marshal func(any) ([]byte, error)
	}{{"encoding/json", json.Marshal}, {"jsonenc", Marshal}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.marshal(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestAppendWritesAfterWhatDstHolds(t *testing.T) {
	v := map[string]any{"b": []any{1.5, "<"}, "a": map[string]string{"k": "v"}}
	want, _ := json.Marshal(v)
	got, err := Append([]byte("prefix:"), v)
	if err != nil || string(got) != "prefix:"+string(want) {
		t.Errorf("Append: %q, %v; want %q", got, err, "prefix:"+string(want))
	}
	if got := AppendString([]byte("k="), "a\"<\u2028"); string(got) != `k="a\"\u003c\u2028"` {
		t.Errorf("AppendString: %s", got)
	}
}
