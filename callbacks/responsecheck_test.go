package callbacks

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// schemaVerdict runs the published schema of document ("request" or
// "response") itself on body: the violations it reports and the keyword
// locations in the schema file that refused.
func schemaVerdict(t testing.TB, document, body string) ([]Violation, []string) {
	t.Helper()
	schemas, err := LoadSchemas()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parseJSON([]byte(body))
	if err != nil {
		t.Fatalf("test document %s: %v", body, err)
	}
	schema := schemas.Response
	if document == "request" {
		schema = schemas.Request
	}
	err = schema.Validate(doc)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		t.Fatal(err)
	}
	var keywords []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			keywords = append(keywords, e.AbsoluteKeywordLocation[strings.IndexByte(e.AbsoluteKeywordLocation, '#'):])
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return violationsOf(ve), keywords
}

// responseRuleCases break each rule of schema/response.json, alone and
// together, and keep to it in every way the rules allow.
var responseRuleCases = []string{
	// the document
	`[]`, `"x"`, `null`, `3`, `true`, `{}`, `{"requeue": "1s", "a/b~c": 1}`,
	// status
	`{"status": {}}`, `{"status": {"a": [1, null, {"b": "c"}]}}`, `{"status": []}`, `{"status": "ok"}`, `{"status": null}`, `{"status": 1.5}`, `{"status": false}`,
	// children
	`{"children": []}`, `{"children": {}}`, `{"children": null}`, `{"children": [null, 1, "x", [], true]}`,
	`{"children": [{}]}`, `{"children": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {}}]}`,
	`{"children": [{"apiVersion": "", "kind": "", "metadata": {"name": ""}}]}`,
	`{"children": [{"apiVersion": 1, "kind": null, "metadata": {"name": 2, "namespace": 3}}]}`,
	`{"children": [{"apiVersion": "v1", "kind": "K", "metadata": []}, {"apiVersion": "v1", "kind": "K", "metadata": null}]}`,
	`{"children": [{"apiVersion": "v1", "kind": "K", "metadata": {}}, {"apiVersion": "v1", "metadata": {"namespace": null}}]}`,
	`{"children": [{"apiVersion": ["v1"], "kind": {}, "metadata": {"name": true, "namespace": ""}}]}`,
	// requeueAfter
	`{"requeueAfter": "0"}`, `{"requeueAfter": "1h2m3.5s"}`, `{"requeueAfter": "250ms"}`, `{"requeueAfter": "3µs"}`, `{"requeueAfter": "3μs"}`, `{"requeueAfter": "4us"}`,
	`{"requeueAfter": ""}`, `{"requeueAfter": "10"}`, `{"requeueAfter": "-1s"}`, `{"requeueAfter": "1d"}`, `{"requeueAfter": ".5s"}`, `{"requeueAfter": "1.s"}`, `{"requeueAfter": 30}`, `{"requeueAfter": null}`, `{"requeueAfter": "1s "}`,
	// events
	`{"events": []}`, `{"events": {}}`, `{"events": [null, [], "x", 1]}`, `{"events": [{}]}`,
	`{"events": [{"reason": "Scaled"}, {"type": "Normal", "reason": "A1", "message": ""}, {"type": "Warning", "reason": "Z"}]}`,
	`{"events": [{"type": "normal", "reason": "Scaled"}, {"type": null, "reason": "S"}, {"type": 1, "reason": "S"}, {"type": "", "reason": "S"}]}`,

	`{"events": [{"reason": "scaled"}, {"reason": ""}, {"reason": "Has space"}, {"reason": 5}, {"reason": null}, {"reason": "É"}]}`,
	`{"events": [{"reason": "A` + strings.Repeat("b", 127) + `"}, {"reason": "A` + strings.Repeat("b", 128) + `"}, {"reason": "a` + strings.Repeat("b", 200) + `"}, {"reason": "A` + strings.Repeat("é", 127) + `"}]}`,
	`{"events": [{"reason": "S", "message": 3}, {"reason": "S", "msg": "x", "Reason": "y"}, {"message": "m"}]}`,
	// error
	`{"error": {"message": "m"}}`, `{"error": {"message": "m", "permanent": false, "retryAfter": "10s"}}`, `{"error": {}}`, `{"error": []}`, `{"error": null}`, `{"error": "boom"}`,
	`{"error": {"message": ""}}`, `{"error": {"message": 1, "permanent": "yes", "retryAfter": "soon"}}`, `{"error": {"message": "m", "permanent": null, "retryAfter": 10}}`,
	`{"error": {"message": "m", "retry": "1s"}}`,
	// finalized
	`{"finalized": true}`, `{"finalized": false}`, `{"finalized": "true"}`, `{"finalized": null}`, `{"finalized": 0}`,
	// everything at once
	`{"status": [], "children": [{"kind": ""}], "requeueAfter": "x", "events": [{"type": "X", "reason": "y", "extra": 1}], "error": {"permanent": 1}, "finalized": 1, "other": {}}`,
	designResponse, memcachedAnswer,
}

// The Go checks refuse exactly what schema/response.json refuses, with the
// same violations, for a case breaking each of its rules.
func TestCheckResponseEqualsTheSchema(t *testing.T) {
	checkEqualsTheSchema(t, "response", responseRuleCases, checkResponse)
}

// checkEqualsTheSchema holds check to schema/<document>.json on bodies:
// the same violations, or none where it finds none.
func checkEqualsTheSchema(t *testing.T, document string, bodies []string, check func(any) []Violation) {
	t.Helper()
	for _, body := range bodies {
		want, _ := schemaVerdict(t, document, body)
		doc, err := parseJSON([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if got := check(doc); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n Go checks: %v\n   schema: %v", body, got, want)
		}
	}
}

// Every rule of schema/response.json refuses at least one of the cases,
// so the comparison above covers the whole schema: each validation keyword
// in the file must appear among the keywords that refused.
func TestResponseRuleCasesCoverTheSchema(t *testing.T) {
	testRuleCasesCoverTheSchema(t, "response", responseRuleCases)
}

func testRuleCasesCoverTheSchema(t *testing.T, document string, cases []string) {
	raw, err := SchemaFS.ReadFile("schema/" + document + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var schema any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, sub := range m {
			switch k {
			case "additionalProperties":
				if sub == false { // a schema refuses by its own keywords, walked below
					rules[at+"/"+k] = false
				}
			case "type", "required", "minLength", "maxLength", "pattern", "enum", "const",
				"minimum", "maximum", "minItems", "maxItems", "format", "uniqueItems":
				rules[at+"/"+k] = false
			}
			switch k {
			case "properties", "$defs":
				for name, p := range sub.(map[string]any) {
					walk(p, at+"/"+k+"/"+escapePointer(name))
				}
			case "items", "additionalProperties":
				walk(sub, at+"/"+k) // a schema, unless a boolean
			case "type", "required", "minLength", "maxLength", "pattern", "enum", "const",
				"minimum", "maximum", "minItems", "maxItems", "format", "uniqueItems",
				"$schema", "$id", "$ref", "title", "description", "$comment", "default", "examples":
			default:
				// A keyword this walk does not know (patternProperties,
				// prefixItems, the branches of allOf, ...) may hold rules
				// it would not list, and the Go checks would not be held
				// to them: teach the walk first.
				t.Fatalf("%s/%s: a schema keyword the completeness walk does not know", at, k)
			}
		}
	}
	walk(schema, "#")
	for _, body := range cases {
		_, keywords := schemaVerdict(t, document, body)
		for _, k := range keywords {
			if _, ok := rules[k]; !ok {
				t.Errorf("%s refused by %s, which the walk of the schema missed", body, k)
			}
			rules[k] = true
		}
	}
	var untested []string
	for k, hit := range rules {
		if !hit {
			untested = append(untested, k)
		}
	}
	sort.Strings(untested)
	if len(untested) > 0 {
		t.Errorf("no case breaks these rules of schema/%s.json: %v", document, untested)
	}
}

// The patterns and lengths the Go checks use are the schema file's.
func TestResponseCheckConstantsAreTheSchemas(t *testing.T) {
	raw, err := SchemaFS.ReadFile("schema/response.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs struct {
			Duration struct{ Pattern string } `json:"duration"`
			Reason   struct {
				Pattern   string
				MaxLength int
			} `json:"reason"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Defs.Duration.Pattern != durationPattern || schema.Defs.Reason.Pattern != reasonPattern || schema.Defs.Reason.MaxLength != reasonMaxLength {
		t.Errorf("schema says duration %q, reason %q up to %d; the Go checks use %q, %q up to %d",
			schema.Defs.Duration.Pattern, schema.Defs.Reason.Pattern, schema.Defs.Reason.MaxLength, durationPattern, reasonPattern, reasonMaxLength)
	}
}

// unparsedNames says whether violationsOf left a message of the library
// naming properties as it was, unable to read the names.
func unparsedNames(vs []Violation) bool {
	for _, v := range vs {
		if strings.HasPrefix(v.Message, "additionalProperties ") || strings.HasPrefix(v.Message, "missing properties: ") {
			return true
		}
	}
	return false
}

// FuzzCheckResponse: on any JSON document, the Go checks and the schema
// give the same violations.
func FuzzCheckResponse(f *testing.F) {
	for _, c := range responseRuleCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkShape(body) != nil {
			return
		}
		doc, err := parseJSON(body)
		if err != nil {
			return
		}
		fuzzedAgreesWithSchema(t, "response", body, checkResponse(doc))
	})
}

// fuzzedAgreesWithSchema fails unless got, the Go checks' violations of a
// fuzzed body, are schema/<document>.json's.
func fuzzedAgreesWithSchema(t *testing.T, document string, body []byte, got []Violation) {
	t.Helper()
	want, _ := schemaVerdict(t, document, string(body))
	if unparsedNames(want) {
		// The library quotes a name ending in a backslash ambiguously
		// ('\'), so violationsOf kept its raw message at the parent;
		// the Go checks name the property itself. Both refuse.
		if len(got) == 0 {
			t.Fatalf("%s: the schema refuses (%v), the Go checks do not", body, want)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n Go checks: %v\n   schema: %v", body, got, want)
	}
}
