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
	`{}`, `[]`, `{"b":1,"a":2,"A":3,"":4,"é":5,"<":6}`, `[1,"two",null,{"x":[]},[[]]]`,
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
		math.Copysign(0, -1), math.Inf(1), math.NaN(), map[string]any{"x": math.Inf(-1)}, []any{math.NaN()},
		map[string]any{"ch": make(chan int)},
	} {
		matchesEncodingJSON(t, v)
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
		// Strings as they are, invalid UTF-8 included.
		matchesEncodingJSON(t, string(raw))
		matchesEncodingJSON(t, map[string]any{string(raw): string(raw)})
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
