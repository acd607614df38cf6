package callbacks

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeTwice is how DecodeResponse decoded before it converted the
// validated document: a second, typed decoding of the body.
func decodeTwice(t *testing.T, body string) *Response {
	t.Helper()
	var resp Response
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("typed decoding of %s: %v", body, err)
	}
	return &resp
}

// The Response converted from the validated document is the one a typed
// decoding of the body gives, value types included: float64 numbers in
// status, int64 for integers in children.
func TestDecodeResponseEqualsTypedDecoding(t *testing.T) {
	child := func(extra string) string {
		return `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"a":"b"}}` + extra + `}`
	}
	numbers := `{"i":3,"neg":-7,"zero":-0,"frac":1.5,"whole":1.0,"exp":1e3,"big":99999999999999999999,"max":9223372036854775807,"tiny":5e-324,` +
		`"list":[1,2.5,[3,{"deep":4}]],"s":"x","b":true,"n":null,"e":{},"a":[]}`
	tests := []struct{ name, body string }{
		{"empty object", `{}`},
		{"design example", designResponse},
		{"memcached answer", memcachedAnswer},
		{"numbers in status", `{"status":` + numbers + `}`},
		{"numbers in a child", `{"children":[` + child(`,"spec":`+numbers) + `]}`},
		{"several children", `{"children":[` + child("") + `,` + child(`,"data":{"k":"v"}`) + `]}`},
		{"empty lists stay non-nil", `{"children":[],"events":[],"status":{}}`},
		{"events with and without type", `{"events":[{"reason":"Scaled"},{"type":"Warning","reason":"Failed","message":"m"}]}`},
		{"error with every field", `{"error":{"message":"m","permanent":true,"retryAfter":"1m30s"},"status":{"phase":"Failed"}}`},
		{"finalized false with requeue", `{"finalized":false,"requeueAfter":"250ms"}`},
		{"duplicate keys: the last wins", `{"status":{"a":1,"a":2},"finalized":true,"finalized":false}`},
		{"escapes and unicode", `{"status":{"msg":"caf\u00e9 \"q\" \\ \ud83d\ude00","k/~":"v"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeResponse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if want := decodeTwice(t, tt.body); !reflect.DeepEqual(got, want) {
				t.Errorf("DecodeResponse(%s)\n got %#v\nwant %#v", tt.body, got, want)
			}
		})
	}
}

// A number no float64 holds is refused with its path, in status and in
// children, where a typed decoding refused it without one.
func TestDecodeResponseRefusesNumbersOutOfRange(t *testing.T) {
	tests := []struct{ body, path string }{
		{`{"status":{"a":{"b":[1,1e400]}}}`, "/status/a/b/1"},
		{`{"children":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"},"data":{"x~/":-1e999}}]}`, "/children/1/data/x~0~1"},
	}
	for _, tt := range tests {
		_, err := DecodeResponse([]byte(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.path+": number ") || !strings.Contains(err.Error(), "does not fit a 64-bit float") {
			t.Errorf("DecodeResponse(%s) = %v, want a violation at %s", tt.body, err, tt.path)
		}
	}
}
