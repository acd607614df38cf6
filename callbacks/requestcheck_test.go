package callbacks

import (
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

// minimalRequest holds the required fields only.
const minimalRequest = `{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c",` +
	`"attempt":1,"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}}`

// req is minimalRequest with fields added after its own; a key given twice
// counts by its last occurrence, so fields also replaces them.
func req(fields string) string {
	return strings.TrimSuffix(minimalRequest, "}") + "," + fields + "}"
}

// requestRuleCases break each rule of schema/request.json, alone and
// together, and keep to it in every way the rules allow.
var requestRuleCases = []string{
	// the document
	`[]`, `"x"`, `null`, `3`, `true`, `{}`, minimalRequest, memcachedUpdate,
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u"}`, req(`"future":{"x":1},"ApiVersion":"x","a/b~c":null`),
	// apiVersion, kind
	req(`"apiVersion":"opgate.dev/v1"`), req(`"apiVersion":null`), req(`"apiVersion":1`), req(`"apiVersion":["opgate.dev/v1alpha1"]`),
	req(`"kind":"callbackrequest"`), req(`"kind":{}`), req(`"kind":""`),
	// uid, operator, callback
	req(`"uid":""`), req(`"uid":1`), req(`"uid":null`), req(`"uid":"é"`), req(`"operator":"","callback":""`), req(`"operator":true,"callback":[]`),
	// event
	req(`"event":"update"`), req(`"event":"delete"`), req(`"event":"resume"`), req(`"event":"timer"`), req(`"event":"sync"`),
	req(`"event":"Create"`), req(`"event":""`), req(`"event":null`), req(`"event":1`), req(`"event":["create"]`),
	// attempt
	req(`"attempt":2`), req(`"attempt":1.0`), req(`"attempt":1e0`), req(`"attempt":10e-1`), req(`"attempt":100e-2`), req(`"attempt":0.5e1`),
	req(`"attempt":1.50E+1`), req(`"attempt":99999999999999999999`), req(`"attempt":1e400`),
	req(`"attempt":0`), req(`"attempt":-1`), req(`"attempt":-0`), req(`"attempt":0.0`), req(`"attempt":-0.0e3`), req(`"attempt":-1e400`), req(`"attempt":0e5`),
	req(`"attempt":1.5`), req(`"attempt":1e-1`), req(`"attempt":100e-3`), req(`"attempt":0.05e1`), req(`"attempt":-1.5`), req(`"attempt":5e-400`),
	req(`"attempt":"1"`), req(`"attempt":null`), req(`"attempt":true`),
	// deadline
	req(`"deadline":"2026-12-01t16:53:40.5z"`), req(`"deadline":"2026-12-01T16:53:40+02:00"`), req(`"deadline":"2026-12-31T23:59:60Z"`),
	req(`"deadline":"2027-01-01T01:59:60+02:00"`), req(`"deadline":"2026-12-01T16:53:40.123456789-11:30"`),
	req(`"deadline":"tomorrow"`), req(`"deadline":""`), req(`"deadline":"2026-12-01"`), req(`"deadline":"2026-13-01T00:00:00Z"`),
	req(`"deadline":"2026-02-29T00:00:00Z"`), req(`"deadline":"2026-12-01 16:53:40Z"`), req(`"deadline":"2026-12-01T16:53:40"`),
	req(`"deadline":"2026-12-01T16:53:40.Z"`), req(`"deadline":"2026-12-01T12:00:60Z"`), req(`"deadline":"2026-12-01T24:00:00Z"`),
	req(`"deadline":"2026-12-01T16:53:40+2:00"`), req(`"deadline":"it's \"soon\" \\ é\n"`), req(`"deadline":1`), req(`"deadline":null`),
	// object, old
	req(`"object":null`), req(`"object":[]`), req(`"old":"x"`), req(`"old":null`), req(`"object":{},"old":{}`),
	req(`"object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"},"data":{"k":1}}`),
	req(`"object":{"apiVersion":"","kind":"","metadata":{"name":""}}`),
	req(`"object":{"apiVersion":1,"kind":null,"metadata":{"name":2,"namespace":3}}`),
	// An empty namespace is a cluster-scoped object's: allowed, whatever
	// response.json's children (whose checks these share) may require.
	req(`"object":{"apiVersion":"v1","kind":"K","metadata":{"name":"a","namespace":""}},"old":{"apiVersion":"v1","kind":"K","metadata":{"name":"a","namespace":""}}`),
	req(`"children":{"v1/K":{"a":{"apiVersion":"v1","kind":"K","metadata":{"name":"a","namespace":""}}}},"related":{"v1/K":{"a":{"apiVersion":"v1","kind":"K","metadata":{"name":"a","namespace":""}}}}`),
	req(`"object":{"apiVersion":"v1","kind":"K","metadata":[]},"old":{"apiVersion":"v1","kind":"K","metadata":null}`),
	req(`"object":{"apiVersion":"v1","kind":"K","metadata":{}},"old":{"apiVersion":"v1","metadata":{"namespace":null}}`),
	// diff
	req(`"diff":[]`), req(`"diff":{}`), req(`"diff":null`), req(`"diff":[null,1,"x",[],true]`), req(`"diff":[{}]`),
	req(`"diff":[{"op":"add","path":"/a","new":{"x":[1]}},{"op":"change","path":"p","old":null,"new":1e400},{"op":"remove","path":"/b","old":"x"}]`),
	req(`"diff":[{"op":"replace","path":"/a"},{"op":"","path":""},{"op":null,"path":1},{"op":["add"],"path":null}]`),
	req(`"diff":[{"op":"add","path":"/a","value":1,"Old":2,"a/b~c":3,"it's \"x\"":4,"é":5}]`),
	// oldUnavailable
	req(`"oldUnavailable":true`), req(`"oldUnavailable":false`), req(`"oldUnavailable":"true"`), req(`"oldUnavailable":null`), req(`"oldUnavailable":0`),
	// children, related
	req(`"children":{},"related":{}`), req(`"children":[],"related":null`), req(`"children":"x","related":1`),
	req(`"children":{"apps/v1/Deployment":{}},"related":{"v1/Pod":null,"v1/Secret":[]}`),
	req(`"children":{"v1/ConfigMap":{"a":null,"b":{},"c":{"apiVersion":1,"kind":"","metadata":{"name":"","namespace":1}},"d":[]}}`),
	req(`"related":{"v1/Config Map":{"my name é/%~?#":{"apiVersion":"v1","kind":"K","metadata":{}}},"":{"":{"metadata":{"name":"x"}}}}`),
	// everything at once
	`{"apiVersion":2,"kind":"X","uid":"","event":"make","operator":1,"callback":null,"attempt":0,"deadline":"now","object":[],"old":{},` +
		`"diff":[{"op":"x","extra":1}],"oldUnavailable":"no","children":{"k":[]},"related":[]}`,
}

// The Go checks refuse exactly what schema/request.json refuses, with the
// same violations, for a case breaking each of its rules and for every
// request the decoding tests use.
func TestCheckRequestEqualsTheSchema(t *testing.T) {
	checkEqualsTheSchema(t, "request", append(requestRuleCases, requestSeeds...), checkRequest)
}

// Every rule of schema/request.json refuses at least one of the cases, so
// the comparison above covers the whole schema.
func TestRequestRuleCasesCoverTheSchema(t *testing.T) {
	testRuleCasesCoverTheSchema(t, "request", requestRuleCases)
}

// The values the Go checks use are the schema file's.
func TestRequestCheckConstantsAreTheSchemas(t *testing.T) {
	raw, err := SchemaFS.ReadFile("schema/request.json")
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		Const   string
		Enum    []string
		Minimum int
		Format  string
	}
	var schema struct {
		Required   []string
		Properties map[string]rule
		Defs       struct {
			DiffOp struct{ Properties map[string]rule } `json:"diffOp"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	p := schema.Properties
	checks := []struct {
		what      string
		file, got any
	}{
		{"required", schema.Required, requestRequired},
		{"apiVersion", p["apiVersion"].Const, APIVersion},
		{"kind", p["kind"].Const, RequestKind},
		{"event", p["event"].Enum, requestEvents},
		{"attempt minimum", p["attempt"].Minimum, attemptMinimum},
		{"deadline format", p["deadline"].Format, "date-time"},
		{"diff op", schema.Defs.DiffOp.Properties["op"].Enum, diffOps},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.file, c.got) {
			t.Errorf("%s: the schema says %v, the Go checks use %v", c.what, c.file, c.got)
		}
	}
	if isDateTime == nil {
		t.Error(`the validator has no "date-time" format`)
	}
}

// The validator panics on an attempt whose exponent math/big refuses to
// expand; the Go checks read such numbers as they are.
func TestCheckRequestReadsAttemptsTheValidatorCannot(t *testing.T) {
	tests := []struct{ attempt, want string }{
		{"1e1000001", ""},
		{"1e99999999999999999999", ""},
		{"12e-1000001", "expected integer, but got number"},
		{"-1e1000001", "must be >= 1 but found -1e1000001"},
		{"0e-99999999999999999999", "must be >= 1 but found 0e-99999999999999999999"},
	}
	for _, tt := range tests {
		doc, err := parseJSON([]byte(req(`"attempt":` + tt.attempt)))
		if err != nil {
			t.Fatal(err)
		}
		got := checkRequest(doc)
		if tt.want == "" && got != nil || tt.want != "" && !reflect.DeepEqual(got, []Violation{{Path: "/attempt", Message: tt.want}}) {
			t.Errorf("attempt %s: violations %v, want %q", tt.attempt, got, tt.want)
		}
	}
}

// attemptBeyondTheValidator says whether the document's attempt is a number
// the validator cannot read (see the test above).
func attemptBeyondTheValidator(doc any) bool {
	top, _ := doc.(map[string]any)
	n, ok := top["attempt"].(json.Number)
	if !ok {
		return false
	}
	_, ok = new(big.Rat).SetString(string(n))
	return !ok
}

// FuzzCheckRequestMatchesSchema: on any JSON document, the Go checks and
// the schema give the same violations.
func FuzzCheckRequestMatchesSchema(f *testing.F) {
	for _, c := range append(requestRuleCases, requestSeeds...) {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := parseJSON(body)
		if err != nil {
			return
		}
		got := checkRequest(doc)
		if attemptBeyondTheValidator(doc) {
			return
		}
		fuzzedAgreesWithSchema(t, "request", body, got)
	})
}
