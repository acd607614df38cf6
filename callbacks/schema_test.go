package callbacks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// designResponse is the response example of docs/contract.md.
const designResponse = `{
  "status":     { "nodes": ["a", "b"] },
  "children":   [ { "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "example-memcached"}, "spec": {} } ],
  "requeueAfter": "30s",
  "events":     [ {"type": "Normal", "reason": "Scaled", "message": "3 replicas"} ],
  "error":      { "message": "database not ready", "permanent": false, "retryAfter": "10s" },
  "finalized":  true
}`

func TestDecodeResponseAcceptsTheContract(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, r *Response)
	}{
		{"design example decodes every field", designResponse, func(t *testing.T, r *Response) {
			if r.Children == nil || len(*r.Children) != 1 || (*r.Children)[0].GetName() != "example-memcached" {
				t.Errorf("children = %v", r.Children)
			}
			if d, _ := r.RequeueAfterDuration(); d != 30*time.Second {
				t.Errorf("requeueAfter = %v", d)
			}
			if d, _ := r.Error.RetryAfterDuration(); d != 10*time.Second || r.Error.Message != "database not ready" {
				t.Errorf("error = %+v", r.Error)
			}
			if r.Finalized == nil || !*r.Finalized || len(r.Events) != 1 || r.Status["nodes"] == nil {
				t.Errorf("response = %+v", r)
			}
		}},
		{"empty body is an empty response", "", func(t *testing.T, r *Response) {
			if r.Children != nil || r.Error != nil || r.Status != nil {
				t.Errorf("response = %+v", r)
			}
		}},
		{"whitespace body is an empty response", " \n\t ", func(t *testing.T, r *Response) {
			if r.Children != nil {
				t.Errorf("response = %+v", r)
			}
		}},
		{"empty object is an empty response", "{}", func(t *testing.T, r *Response) {
			if r.Children != nil {
				t.Errorf("absent children must stay nil so nothing is pruned, got %v", r.Children)
			}
		}},
		{"empty children list is kept apart from absent", `{"children": []}`, func(t *testing.T, r *Response) {
			if r.Children == nil || len(*r.Children) != 0 {
				t.Errorf("children = %v, want empty non-nil", r.Children)
			}
		}},
		{"event without type is allowed", `{"events": [{"reason": "Done"}]}`, func(t *testing.T, r *Response) {
			if r.Events[0].Reason != "Done" || r.Events[0].Type != "" {
				t.Errorf("events = %+v", r.Events)
			}
		}},
		{"compound and fractional durations", `{"requeueAfter": "1h2m3.5s", "error": {"message": "x", "retryAfter": "250ms"}}`, func(t *testing.T, r *Response) {
			if d, _ := r.RequeueAfterDuration(); d != time.Hour+2*time.Minute+3500*time.Millisecond {
				t.Errorf("requeueAfter = %v", d)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeResponse([]byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeResponse: %v", err)
			}
			tt.check(t, r)
		})
	}
}

func TestDecodeResponseListsEveryViolationWithItsPath(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // each must appear in the error message
	}{
		{"child without kind", `{"children": [{"apiVersion": "v1", "metadata": {"name": "a"}}]}`,
			[]string{"/children/0/kind: missing property"}},
		{"child without name", `{"children": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}]}`,
			[]string{"/children/0/metadata/name: missing property"}},
		{"several children missing several fields", `{"children": [{"kind": "A", "metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}`,
			[]string{"/children/0/apiVersion: missing property", "/children/1/apiVersion: missing property", "/children/1/kind: missing property"}},
		{"typo at top level", `{"requeue_after": "30s"}`,
			[]string{"/requeue_after: unknown property"}},
		{"odd property name is escaped as a pointer", `{"a/b~'c\"": 1}`,
			[]string{`/a~1b~0'c": unknown property`}},
		{"requeueAfter without unit", `{"requeueAfter": "30"}`,
			[]string{`/requeueAfter: must be a Go duration`}},
		{"negative retryAfter", `{"error": {"message": "x", "retryAfter": "-1s"}}`,
			[]string{`/error/retryAfter: must be a Go duration`}},
		{"overflowing duration", `{"requeueAfter": "99999999999h"}`,
			[]string{`/requeueAfter: not a Go duration`}},
		{"event type outside the enum", `{"events": [{"type": "Info", "reason": "Done"}]}`,
			[]string{`/events/0/type: value must be one of "Normal", "Warning"`}},
		{"event reason not CamelCase", `{"events": [{"type": "Normal", "reason": "scaled up"}]}`,
			[]string{`/events/0/reason: must be a CamelCase word`}},
		{"event without reason", `{"events": [{"type": "Warning", "message": "m"}]}`,
			[]string{`/events/0/reason: missing property`}},
		{"error without message", `{"error": {"permanent": true}}`,
			[]string{`/error/message: missing property`}},
		{"error with a typo", `{"error": {"message": "x", "retry_after": "1s"}}`,
			[]string{`/error/retry_after: unknown property`}},
		{"finalized as a string", `{"finalized": "yes"}`,
			[]string{`/finalized: expected boolean, but got string`}},
		{"status as a list", `{"status": []}`,
			[]string{`/status: expected object, but got array`}},
		{"children null", `{"children": null}`,
			[]string{`/children: expected array, but got null`}},
		{"array instead of object", `[]`,
			[]string{`response does not match the opgate contract: expected object, but got array`}},
		{"invalid JSON names the byte", `{"status": {]}`,
			[]string{`not valid JSON`, `at byte 13`}},
		{"truncated JSON", `{"status": {"a": `,
			[]string{`not valid JSON`, `ends in the middle`}},
		{"trailing data after the value", `{} {}`,
			[]string{`unexpected data after the top-level value`}},
		{"all violations at once", `{"finalized": 1, "requeueAfter": "soon", "events": [{}]}`,
			[]string{"/events/0/reason: missing property", "/finalized: expected boolean", "/requeueAfter: must be a Go duration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeResponse([]byte(tt.body))
			if err == nil {
				t.Fatalf("DecodeResponse accepted %s as %+v", tt.body, r)
			}
			if r != nil {
				t.Errorf("a response was returned with the error: %+v", r)
			}
			var ce *ContractError
			if !errors.As(err, &ce) || ce.Document != "response" {
				t.Errorf("error %T is not a response *ContractError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestContractErrorMessageIsBoundedButKeepsAllViolations(t *testing.T) {
	children := strings.Repeat(`{"metadata": {"name": "x"}},`, 30)
	body := `{"children": [` + strings.TrimSuffix(children, ",") + `]}`
	_, err := DecodeResponse([]byte(body))
	var ce *ContractError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *ContractError", err)
	}
	if len(ce.Violations) != 60 {
		t.Errorf("got %d violations, want 60 (apiVersion and kind of 30 children)", len(ce.Violations))
	}
	if !strings.HasSuffix(err.Error(), "; and 50 more") {
		t.Errorf("message does not end with the count of unlisted violations: %q", err)
	}
}

func validRequest() *Request {
	obj := func(apiVersion, kind, name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetName(name)
		u.SetNamespace("demo")
		return u
	}
	return &Request{
		APIVersion: APIVersion,
		Kind:       RequestKind,
		UID:        "d1",
		Event:      EventSync,
		Operator:   "memcached",
		Callback:   "status",
		Attempt:    1,
		Deadline:   time.Date(2026, 11, 25, 10, 0, 10, 0, time.UTC),
		Object:     obj("cache.example.com/v1alpha1", "Memcached", "example"),
		Old:        obj("cache.example.com/v1alpha1", "Memcached", "example"),
		Diff:       []DiffOp{{Op: OpChange, Path: "spec.size", Old: json.RawMessage("1"), New: json.RawMessage("3")}},
		Children: map[string]map[string]*unstructured.Unstructured{
			"apps/v1/Deployment": {"example": obj("apps/v1", "Deployment", "example")},
		},
		Related: map[string]map[string]*unstructured.Unstructured{
			"v1/Pod": {"example-abc": obj("v1", "Pod", "example-abc")},
		},
	}
}

func TestValidateRequest(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *Request)
		want   string // "" when valid
	}{
		{"every field set is valid", func(*Request) {}, ""},
		{"only required fields is valid", func(r *Request) { r.Old, r.Diff, r.Children, r.Related = nil, nil, nil, nil }, ""},
		{"missing uid", func(r *Request) { r.UID = "" }, "/uid: length must be >= 1"},
		{"unknown event", func(r *Request) { r.Event = "created" }, "/event: value must be one of"},
		{"attempt counts from one", func(r *Request) { r.Attempt = 0 }, "/attempt: must be >= 1"},
		{"wrong kind", func(r *Request) { r.Kind = "Request" }, "/kind: value must be \"CallbackRequest\""},
		{"no object", func(r *Request) { r.Object = nil }, "/object: expected object, but got null"},
		{"diff op outside the enum", func(r *Request) { r.Diff[0].Op = "replace" }, "/diff/0/op: value must be one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.mutate(r)
			body, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			err = ValidateRequest(body)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ValidateRequest: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ValidateRequest error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateRequestAssertsTheDeadlineFormat(t *testing.T) {
	body, err := json.Marshal(validRequest())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	doc["deadline"] = "tomorrow"
	body, _ = json.Marshal(doc)
	if err := ValidateRequest(body); err == nil || !strings.Contains(err.Error(), "/deadline:") {
		t.Errorf("ValidateRequest error = %v, want a /deadline violation", err)
	}
}

func TestCompileSchemasFromTheEmbeddedFiles(t *testing.T) {
	s, err := CompileSchemas()
	if err != nil {
		t.Fatal(err)
	}
	if s.Request.Location != RequestSchemaURL+"#" || s.Response.Location != ResponseSchemaURL+"#" {
		t.Errorf("locations = %q, %q", s.Request.Location, s.Response.Location)
	}
}
