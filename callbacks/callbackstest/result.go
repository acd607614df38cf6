package callbackstest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/internal/refusal"
)

// Result is a handler's answer to one Call.
type Result struct {
	t       testing.TB
	Request *callbacks.Request

	StatusCode int
	Header     http.Header
	Body       []byte
	// Response is the decoded answer; nil only for a non-2xx answer whose
	// body is not a valid response.
	Response *callbacks.Response

	status map[string]any // Response.Status with integers as int64
}

func (r *Result) response() *callbacks.Response {
	r.t.Helper()
	if r.Response == nil {
		r.t.Fatalf("callbackstest: answer %d has no valid response body: %s", r.StatusCode, r.Body)
	}
	return r.Response
}

// Children returns the answer's children; present is false when the answer
// has no "children" key (which, in a sync answer, prunes nothing) and true
// for a list, even an empty one (which prunes every owned child missing
// from it).
func (r *Result) Children() (children []*unstructured.Unstructured, present bool) {
	r.t.Helper()
	resp := r.response()
	if resp.Children == nil {
		return nil, false
	}
	return *resp.Children, true
}

// Child returns the answered child of that kind and name, failing the test
// when there is none. Without a namespace the gateway puts the child in the
// parent's.
func (r *Result) Child(apiVersion, kind, name string) *unstructured.Unstructured {
	r.t.Helper()
	children, _ := r.Children()
	var seen []string
	for _, c := range children {
		if c.GetAPIVersion() == apiVersion && c.GetKind() == kind && c.GetName() == name {
			return c
		}
		seen = append(seen, c.GetAPIVersion()+" "+c.GetKind()+" "+c.GetName())
	}
	r.t.Fatalf("callbackstest: no child %s %s %q in the answer; children: %v", apiVersion, kind, name, seen)
	return nil
}

// StatusField returns a field of the answered status patch, or nil when it
// is absent. Integers are int64, other numbers float64, lists []any and
// objects map[string]any.
func (r *Result) StatusField(path ...string) any {
	r.t.Helper()
	r.response()
	v, found, err := unstructured.NestedFieldNoCopy(r.status, path...)
	if err != nil || !found {
		return nil
	}
	return v
}

// StatusStrings returns a list-of-strings field of the answered status
// patch, failing the test when it is absent or of another type.
func (r *Result) StatusStrings(path ...string) []string {
	r.t.Helper()
	v := r.StatusField(path...)
	list, ok := v.([]any)
	if !ok {
		r.t.Fatalf("callbackstest: status.%s = %#v, want a list of strings; body: %s", strings.Join(path, "."), v, r.Body)
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			r.t.Fatalf("callbackstest: status.%s holds %#v, want strings only", strings.Join(path, "."), item)
		}
		out = append(out, s)
	}
	return out
}

// IsTemporaryError says whether the gateway takes the answer for a
// failure it retries: a 2xx reporting an error that is not permanent, or a
// non-2xx answer the gateway does not take for permanent (a redirect, a
// 401, a 5xx, a body saying "permanent": false), whatever its body.
func (r *Result) IsTemporaryError() bool {
	r.t.Helper()
	if r.refused() {
		return !refusal.Permanent(r.StatusCode, refusal.Decode(r.Body))
	}
	e := r.response().Error
	return e != nil && !e.Permanent
}

// IsPermanentError says whether the gateway takes the answer for a failure
// it does not retry until the object's essence changes: a 2xx reporting a
// permanent error, or a non-2xx answer the gateway takes for permanent (a
// body saying "permanent": true, else a 400 or a 422).
func (r *Result) IsPermanentError() bool {
	r.t.Helper()
	if r.refused() {
		return refusal.Permanent(r.StatusCode, refusal.Decode(r.Body))
	}
	e := r.response().Error
	return e != nil && e.Permanent
}

// refused says whether the status code is not a 2xx: the gateway then
// applies nothing of the body and classifies the failure by the code and
// the body's error object, as package refusal reads them.
func (r *Result) refused() bool { return r.StatusCode < 200 || r.StatusCode > 299 }

// ReportedError returns the answer's error field, failing the test when
// there is none.
func (r *Result) ReportedError() *callbacks.Error {
	r.t.Helper()
	e := r.response().Error
	if e == nil {
		r.t.Fatalf("callbackstest: the answer reports no error; body: %s", r.Body)
	}
	return e
}

// Event returns the first Event of that reason in the answer, failing the
// test when there is none.
func (r *Result) Event(reason string) callbacks.KubeEvent {
	r.t.Helper()
	events := r.response().Events
	for _, e := range events {
		if e.Reason == reason {
			if e.Type == "" {
				e.Type = callbacks.EventTypeNormal
			}
			return e
		}
	}
	r.t.Fatalf("callbackstest: no Event %q in the answer; events: %s", reason, describeEvents(events))
	return callbacks.KubeEvent{}
}

func describeEvents(events []callbacks.KubeEvent) string {
	parts := make([]string, 0, len(events))
	for _, e := range events {
		parts = append(parts, fmt.Sprintf("%s %s %q", e.Type, e.Reason, e.Message))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Finalized says whether a delete answer releases the finalizer, as the
// gateway reads it: a 2xx without an error whose "finalized" is absent or
// true. A non-2xx answer or a reported error is a failed call, which keeps
// the finalizer whatever "finalized" says.
func (r *Result) Finalized() bool {
	r.t.Helper()
	if r.refused() {
		return false
	}
	resp := r.response()
	return resp.Error == nil && (resp.Finalized == nil || *resp.Finalized)
}
