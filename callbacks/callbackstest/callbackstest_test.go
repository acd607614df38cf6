package callbackstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
)

const widget = `
	apiVersion: example.com/v1
	kind: Widget
	metadata:
	  name: w1
	  namespace: demo
	  labels: {tier: cache}
	spec: {size: 5}
	status: {ready: true}`

// failures stands in for *testing.T to prove that a helper fails the test:
// Fatalf ends the helper's goroutine as the real one does.
type failures struct {
	testing.TB
	mu       sync.Mutex
	messages []string
}

func (f *failures) Helper() {}

func (f *failures) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.messages = append(f.messages, fmt.Sprintf(format, args...))
}

func (f *failures) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

// failureOf runs fn with a stand-in test and returns what it failed with,
// or "" when it did not fail.
func failureOf(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &failures{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return strings.Join(f.messages, "\n")
}

func TestWithOldSendsWhatTheGatewayRemembers(t *testing.T) {
	req := callbackstest.NewRequest(t, callbacks.EventUpdate, widget, callbackstest.WithOld(`
		apiVersion: example.com/v1
		kind: Widget
		metadata: {name: w1, namespace: demo, labels: {tier: cache}, resourceVersion: "7"}
		spec: {size: 3}
		status: {ready: false}`))

	wantDiff := []callbacks.DiffOp{{Op: callbacks.OpChange, Path: "spec.size", Old: json.RawMessage("3"), New: json.RawMessage("5")}}
	if !reflect.DeepEqual(req.Diff, wantDiff) {
		t.Errorf("diff = %+v, want %+v", req.Diff, wantDiff)
	}
	wantOld := map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1", "namespace": "demo", "labels": map[string]any{"tier": "cache"}},
		"spec":     map[string]any{"size": int64(3)},
	}
	if !reflect.DeepEqual(req.Old.Object, wantOld) {
		t.Errorf("old = %v, want %v (no status, no server metadata)", req.Old.Object, wantOld)
	}
}

func TestNewRequestKeysChildrenAndRelatedLikeTheGateway(t *testing.T) {
	req := callbackstest.NewRequest(t, callbacks.EventSync, widget,
		callbackstest.WithCallback("status"), callbackstest.WithAttempt(3),
		callbackstest.WithChildren(`{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w1", "namespace": "demo"}}`),
		callbackstest.WithRelated(
			`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "demo"}}`,
			`{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "vault"}}`,
		))
	if req.Callback != "status" || req.Attempt != 3 {
		t.Errorf("callback %q attempt %d, want status 3", req.Callback, req.Attempt)
	}
	if req.Children["apps/v1/Deployment"]["w1"] == nil {
		t.Errorf("children = %v, want apps/v1/Deployment w1", req.Children)
	}
	if req.Related["v1/Pod"]["p"] == nil || req.Related["v1/Secret"]["vault/s"] == nil {
		t.Errorf("related = %v, want v1/Pod p and v1/Secret vault/s (other namespace keyed namespace/name)", req.Related)
	}
}

func TestObjectReadsIndentedYAMLAndJSON(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"YAML indented with tabs", "\n\t\tapiVersion: v1\n\t\tkind: ConfigMap\n\t\tmetadata:\n\t\t  name: c\n\t\tdata: {x: \"3\"}\n"},
		{"YAML indented with spaces", "\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: c\n    data: {x: \"3\"}\n"},
		{"JSON", `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "3"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := callbackstest.Object(t, tt.doc)
			if o.GetKind() != "ConfigMap" || o.GetName() != "c" || o.Object["data"].(map[string]any)["x"] != "3" {
				t.Errorf("decoded %v", o.Object)
			}
		})
	}
}

// echo answers every request with a fixed status code and body.
func echo(code int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	})
}

func TestCallFailsTheTestOnWhatTheGatewayWouldRefuse(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.Handler
		request  string
		opts     []callbackstest.CallOption
		wantFail string // "" when Call must not fail
	}{
		{"a valid answer passes", echo(200, `{"status": {"ready": true}}`), widget, nil, ""},
		{"an empty 2xx body passes", echo(204, ``), widget, nil, ""},
		{"a misspelt field fails", echo(200, `{"requeue_after": "1s"}`), widget, nil, "/requeue_after: unknown property"},
		{"a body that is not JSON fails", echo(200, `ok`), widget, nil, "gateway would refuse"},
		{"a non-2xx answer fails by default", echo(500, `oops`), widget, nil, "answered 500, want 2xx"},
		{"an expected non-2xx answer passes without a valid body", echo(503, `oops`), widget, []callbackstest.CallOption{callbackstest.ExpectStatus(503)}, ""},
		{"another status than the expected one fails", echo(200, `{}`), widget, []callbackstest.CallOption{callbackstest.ExpectStatus(404)}, "answered 200, want 404"},
		{"a request the gateway would never send fails", echo(200, `{}`), `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "demo"}}`, nil, "/object/metadata/name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := failureOf(t, func(tb testing.TB) {
				callbackstest.Call(tb, tt.handler, callbackstest.NewRequest(tb, callbacks.EventCreate, tt.request), tt.opts...)
			})
			switch {
			case tt.wantFail == "" && got != "":
				t.Errorf("Call failed the test: %s", got)
			case tt.wantFail != "" && !strings.Contains(got, tt.wantFail):
				t.Errorf("Call failed with %q, want a failure containing %q", got, tt.wantFail)
			}
		})
	}
}

func TestCallSendsTheGatewayHeaders(t *testing.T) {
	var got http.Header
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() })
	req := callbackstest.NewRequest(t, callbacks.EventCreate, widget, callbackstest.WithUID("d-1"))
	callbackstest.Call(t, h, req, callbackstest.Signed([]byte("s3cret")))
	for _, name := range []string{callbacks.HeaderWebhookID, callbacks.HeaderIdempotencyKey} {
		if got.Get(name) != "d-1" {
			t.Errorf("%s = %q, want the uid", name, got.Get(name))
		}
	}
	if !strings.HasPrefix(got.Get(callbacks.HeaderWebhookSignature), "v1,") || got.Get(callbacks.HeaderWebhookTimestamp) == "" {
		t.Errorf("headers %v, want a Standard Webhooks signature", got)
	}
}

func TestResultAssertions(t *testing.T) {
	const answer = `{
		"status": {"replicas": 3, "ratio": 0.5, "nodes": ["a", "b"], "mixed": ["a", 1]},
		"children": [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w1"}, "spec": {"replicas": 3}}],
		"events": [{"reason": "Created", "message": "done"}],
		"error": {"message": "slow", "retryAfter": "10s"}
	}`
	res := callbackstest.Call(t, echo(200, answer), callbackstest.NewRequest(t, callbacks.EventCreate, widget))

	if got := res.StatusField("replicas"); got != int64(3) {
		t.Errorf("StatusField(replicas) = %#v, want int64(3)", got)
	}
	if got := res.StatusField("ratio"); got != 0.5 {
		t.Errorf("StatusField(ratio) = %#v, want 0.5", got)
	}
	if got := res.StatusField("absent", "deeper"); got != nil {
		t.Errorf("StatusField of an absent field = %#v, want nil", got)
	}
	if got := res.StatusStrings("nodes"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("StatusStrings(nodes) = %v", got)
	}
	if d := res.Child("apps/v1", "Deployment", "w1"); d.Object["spec"].(map[string]any)["replicas"] != int64(3) {
		t.Errorf("child spec = %v, want replicas int64(3)", d.Object["spec"])
	}
	if e := res.Event("Created"); e.Type != callbacks.EventTypeNormal || e.Message != "done" {
		t.Errorf("Event(Created) = %+v, want Normal with its message", e)
	}
	if !res.IsTemporaryError() || res.IsPermanentError() || res.ReportedError().RetryAfter != "10s" {
		t.Errorf("error %+v, want temporary with retryAfter 10s", res.Response.Error)
	}
	if res.Finalized() {
		t.Error("an answer reporting an error keeps the finalizer: the gateway ignores its finalized")
	}

	failing := []struct {
		name   string
		assert func(*callbackstest.Result)
		want   string
	}{
		{"Child of a missing child lists the children", func(r *callbackstest.Result) { r.Child("apps/v1", "Deployment", "w2") }, "children: [apps/v1 Deployment w1]"},
		{"StatusStrings of a mixed list", func(r *callbackstest.Result) { r.StatusStrings("mixed") }, "want strings only"},
		{"StatusStrings of an absent field", func(r *callbackstest.Result) { r.StatusStrings("nope") }, "want a list of strings"},
		{"Event of a missing reason lists the events", func(r *callbackstest.Result) { r.Event("Scaled") }, `Created "done"`},
	}
	for _, tt := range failing {
		t.Run(tt.name, func(t *testing.T) {
			got := failureOf(t, func(tb testing.TB) {
				tt.assert(callbackstest.Call(tb, echo(200, answer), callbackstest.NewRequest(tb, callbacks.EventCreate, widget)))
			})
			if !strings.Contains(got, tt.want) {
				t.Errorf("failed with %q, want a failure containing %q", got, tt.want)
			}
		})
	}
}

// The helpers say what the gateway does with an answer: a non-2xx answer
// is a failed call classified by its code and its body's error object
// (permanent for 400 and 422 unless the body says otherwise, never for a
// redirect), which keeps the finalizer.
func TestResultClassifiesAnswersAsTheGatewayDoes(t *testing.T) {
	tests := []struct {
		name                 string
		code                 int
		body                 string
		temporary, permanent bool
		finalized            bool
	}{
		{"an empty success releases the finalizer", 200, `{}`, false, false, true},
		{"an empty 204 releases the finalizer", 204, ``, false, false, true},
		{"finalized false keeps it", 200, `{"finalized":false}`, false, false, false},
		{"a reported error is temporary and keeps it, finalized or not", 200, `{"error":{"message":"x"},"finalized":true}`, true, false, false},
		{"a reported permanent error", 200, `{"error":{"message":"x","permanent":true}}`, false, true, false},
		{"a 422 with an error object is permanent", 422, `{"error":{"message":"bad"}}`, false, true, false},
		{"a 400 whose body is not JSON is permanent", 400, `Bad Request`, false, true, false},
		{"a 422 whose body says temporary is temporary", 422, `{"error":{"message":"x","permanent":false}}`, true, false, false},
		{"a 503 with an empty object is temporary and keeps the finalizer", 503, `{}`, true, false, false},
		{"a 503 with an HTML page is temporary", 503, `<html>busy</html>`, true, false, false},
		{"a 500 whose body says permanent is permanent", 500, `{"error":{"message":"x","permanent":true}}`, false, true, false},
		{"a 401 is temporary: a rotated secret cures it", 401, `{"error":{"message":"signature"}}`, true, false, false},
		{"a redirect is never permanent", 302, `{"error":{"message":"x","permanent":true}}`, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := callbackstest.Call(t, echo(tt.code, tt.body), callbackstest.NewRequest(t, callbacks.EventDelete, widget),
				callbackstest.ExpectStatus(tt.code))
			if got := res.IsTemporaryError(); got != tt.temporary {
				t.Errorf("IsTemporaryError() = %v, want %v", got, tt.temporary)
			}
			if got := res.IsPermanentError(); got != tt.permanent {
				t.Errorf("IsPermanentError() = %v, want %v", got, tt.permanent)
			}
			if got := res.Finalized(); got != tt.finalized {
				t.Errorf("Finalized() = %v, want %v", got, tt.finalized)
			}
		})
	}
}

// The package doc's example, kept compiling and passing.
func TestPackageDocExample(t *testing.T) {
	mux := callbacks.NewMux()
	mux.Handle("create-deployment", func(_ context.Context, req *callbacks.Request) (*callbacks.Response, error) {
		size, err := req.ObjectInt64("spec", "size")
		if err != nil {
			return nil, callbacks.Permanent(err.Error())
		}
		d := callbackstest.Object(t, fmt.Sprintf(`{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": %q}, "spec": {"replicas": %d}}`, req.Object.GetName(), size))
		return callbacks.Children(d), nil
	})
	req := callbackstest.NewRequest(t, callbacks.EventCreate, `
		apiVersion: cache.example.com/v1alpha1
		kind: Memcached
		metadata: {name: example, namespace: demo}
		spec: {size: 3}`, callbackstest.WithCallback("create-deployment"))
	res := callbackstest.Call(t, mux, req)
	d := res.Child("apps/v1", "Deployment", "example")
	if n := d.Object["spec"].(map[string]any)["replicas"]; n != int64(3) {
		t.Errorf("replicas = %v, want 3", n)
	}
}
