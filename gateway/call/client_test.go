package call

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/failure"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// now is the fixed time of every test client.
var now = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.Clock = func() time.Time { return now }
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func testRequest(uid string, attempt int) *callbacks.Request {
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion("cache.example.com/v1alpha1")
	obj.SetKind("Memcached")
	obj.SetName("example")
	obj.SetNamespace("demo")
	return &callbacks.Request{
		UID:      uid,
		Event:    callbacks.EventUpdate,
		Operator: "memcached",
		Callback: "resize",
		Attempt:  attempt,
		Object:   obj,
	}
}

func answer(code int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// success marks a row whose call must succeed.
const success = ""

func TestCallClassifiesAnswers(t *testing.T) {
	longBody := strings.Repeat("x", 2000)
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		closed     bool          // call a server that is gone
		timeout    time.Duration // endpoint timeout; default when zero
		reason     string        // success, or the failure's reason
		class      failure.Class
		retryAfter time.Duration
		withResp   bool     // the decoded response comes with the error
		inMessage  []string // beyond the URL, which every message names
	}{
		{name: "2xx with a valid body succeeds", handler: answer(200, nil, `{"requeueAfter": "30s", "status": {"ready": true}}`), reason: success},
		{name: "2xx with an empty body succeeds", handler: answer(200, nil, ""), reason: success},
		{name: "204 No Content succeeds", handler: answer(204, nil, ""), reason: success},
		{name: "2xx with a temporary error is retried after its retryAfter", handler: answer(200, nil, `{"status": {"phase": "Waiting"}, "error": {"message": "database not ready", "retryAfter": "10s"}}`),
			reason: ReasonHandlerError, class: failure.Temporary, retryAfter: 10 * time.Second, withResp: true, inMessage: []string{"database not ready"}},
		{name: "2xx with a temporary error and no retryAfter leaves the delay to the backoff", handler: answer(201, nil, `{"error": {"message": "busy", "permanent": false}}`),
			reason: ReasonHandlerError, class: failure.Temporary, withResp: true, inMessage: []string{"busy"}},
		{name: "2xx with a permanent error is not retried", handler: answer(200, nil, `{"error": {"message": "size must be positive", "permanent": true}}`),
			reason: ReasonHandlerError, class: failure.Permanent, withResp: true, inMessage: []string{"permanent error: size must be positive"}},
		{name: "2xx with invalid JSON is an invalid response", handler: answer(200, nil, `<html>ok</html>`),
			reason: ReasonInvalidResponse, class: failure.Temporary, inMessage: []string{"not valid JSON"}},
		{name: "2xx breaking the schema names the paths", handler: answer(200, nil, `{"children": [{"apiVersion": "v1", "metadata": {"name": "a"}}], "requeue": "1s"}`),
			reason: ReasonInvalidResponse, class: failure.Temporary, inMessage: []string{"/children/0/kind: missing property", "/requeue: unknown property"}},
		{name: "2xx nesting deeper than the limit is an invalid response naming the limit", handler: answer(200, nil, `{"status": `+strings.Repeat("[", callbacks.MaxResponseDepth)+strings.Repeat("]", callbacks.MaxResponseDepth)+`}`),
			reason: ReasonInvalidResponse, class: failure.Temporary, inMessage: []string{"MaxResponseDepth"}},
		{name: "2xx with more elements than the limit is an invalid response naming the limit", handler: answer(200, nil, `{"status": {"l": [0`+strings.Repeat(",0", callbacks.MaxResponseElements)+`]}}`),
			reason: ReasonInvalidResponse, class: failure.Temporary, inMessage: []string{"MaxResponseElements"}},
		{name: "408 is retried", handler: answer(408, nil, ""), reason: ReasonHandlerUnavailable, class: failure.Temporary, inMessage: []string{"HTTP 408"}},
		{name: "425 is retried", handler: answer(425, nil, ""), reason: ReasonHandlerUnavailable, class: failure.Temporary, inMessage: []string{"HTTP 425"}},
		{name: "429 is retried after Retry-After seconds", handler: answer(429, map[string]string{"Retry-After": "7"}, "slow down"),
			reason: ReasonHandlerUnavailable, class: failure.Temporary, retryAfter: 7 * time.Second, inMessage: []string{"HTTP 429", `"slow down"`}},
		{name: "503 is retried after a Retry-After HTTP-date", handler: answer(503, map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, ""),
			reason: ReasonHandlerUnavailable, class: failure.Temporary, retryAfter: 90 * time.Second, inMessage: []string{"HTTP 503"}},
		{name: "Retry-After in the past leaves the delay to the backoff", handler: answer(503, map[string]string{"Retry-After": now.Add(-time.Hour).Format(http.TimeFormat)}, ""),
			reason: ReasonHandlerUnavailable, class: failure.Temporary},
		{name: "500 is retried", handler: answer(500, nil, "panic: nil map"), reason: ReasonHandlerUnavailable, class: failure.Temporary, inMessage: []string{"HTTP 500", "panic: nil map"}},
		{name: "400 is rejected with a truncated body", handler: answer(400, nil, longBody),
			reason: ReasonHandlerRejected, class: failure.Permanent, inMessage: []string{"HTTP 400", strings.Repeat("x", snippetBytes) + "…"}},
		{name: "422 is rejected", handler: answer(422, nil, "size is invalid"),
			reason: ReasonHandlerRejected, class: failure.Permanent, inMessage: []string{`HTTP 422: "size is invalid"`}},
		{name: "401 is retried: a credential rotation cures it", handler: answer(401, nil, "signature refused"),
			reason: ReasonHandlerUnauthorized, class: failure.Temporary, inMessage: []string{`HTTP 401: "signature refused"`}},
		{name: "403 is retried like 401", handler: answer(403, nil, ""),
			reason: ReasonHandlerUnauthorized, class: failure.Temporary, inMessage: []string{"HTTP 403"}},
		{name: "404 is retried: a handler rollout cures it", handler: answer(404, nil, "404 page not found\n"),
			reason: ReasonHandlerNotFound, class: failure.Temporary, inMessage: []string{`HTTP 404: "404 page not found"`}},
		{name: "410 is retried like 404", handler: answer(410, nil, ""), reason: ReasonHandlerNotFound, class: failure.Temporary},
		{name: "405 is retried: a route fix cures it", handler: answer(405, nil, ""), reason: ReasonHandlerMethodNotAllowed, class: failure.Temporary},
		{name: "409 is retried", handler: answer(409, nil, ""), reason: ReasonHandlerConflict, class: failure.Temporary},
		{name: "another 4xx is retried", handler: answer(413, nil, ""), reason: ReasonHandlerRejected, class: failure.Temporary, inMessage: []string{"HTTP 413"}},
		{name: "a 4xx whose body says permanent is permanent", handler: answer(401, nil, `{"error": {"message": "this client is banned", "permanent": true}}`),
			reason: ReasonHandlerUnauthorized, class: failure.Permanent, inMessage: []string{"this client is banned"}},
		{name: "a 400 whose body says not permanent is retried", handler: answer(400, nil, `{"error": {"message": "schema not loaded yet", "permanent": false}}`),
			reason: ReasonHandlerRejected, class: failure.Temporary},
		{name: "a 5xx whose body says permanent is permanent", handler: answer(500, nil, `{"error": {"message": "cannot ever work", "permanent": true}}`),
			reason: ReasonHandlerUnavailable, class: failure.Permanent},
		{name: "a refusal's body retryAfter is honoured without Retry-After", handler: answer(404, nil, `{"error": {"message": "rolling out", "retryAfter": "3s"}}`),
			reason: ReasonHandlerNotFound, class: failure.Temporary, retryAfter: 3 * time.Second},
		{name: "Retry-After wins over the body's retryAfter", handler: answer(429, map[string]string{"Retry-After": "7"}, `{"error": {"message": "slow", "retryAfter": "3s"}}`),
			reason: ReasonHandlerUnavailable, class: failure.Temporary, retryAfter: 7 * time.Second},
		{name: "a body too large to decode is judged by its status", handler: answer(404, nil, `{"error": {"permanent": true, "message": "`+strings.Repeat("x", errorBodyBytes)+`"}}`),
			reason: ReasonHandlerNotFound, class: failure.Temporary},
		{name: "302 is not followed", handler: answer(302, map[string]string{"Location": "/elsewhere?sig=leak"}, ""),
			reason: ReasonHandlerRedirected, class: failure.Temporary, inMessage: []string{"HTTP 302 redirect to", "/elsewhere;"}},
		{name: "no answer within the timeout", handler: func(_ http.ResponseWriter, r *http.Request) {
			// net/http notices the client hanging up only once the body is read.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		},
			timeout: 100 * time.Millisecond, reason: ReasonHandlerTimeout, class: failure.Temporary, inMessage: []string{"no full answer within 100ms"}},
		{name: "connection closed without an answer", handler: func(w http.ResponseWriter, _ *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, reason: ReasonHandlerUnreachable, class: failure.Temporary, inMessage: []string{"EOF"}},
		{name: "connection refused", handler: answer(200, nil, ""), closed: true, reason: ReasonHandlerUnreachable, class: failure.Temporary, inMessage: []string{"refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var redirected atomic.Bool
			mux := http.NewServeMux()
			mux.HandleFunc("/hook", tt.handler)
			mux.HandleFunc("/elsewhere", func(http.ResponseWriter, *http.Request) { redirected.Store(true) })
			srv := httptest.NewServer(mux)
			if tt.closed {
				srv.Close()
			} else {
				defer srv.Close()
			}
			c := newTestClient(t, Config{})

			ep := Endpoint{URL: srv.URL + "/hook?token=querysecret", Timeout: tt.timeout}
			resp, err := c.Call(context.Background(), ep, testRequest("d1", 1))

			if redirected.Load() {
				t.Error("the redirect was followed")
			}
			if tt.reason == success {
				if err != nil || resp == nil {
					t.Fatalf("Call = %v, %v; want a response", resp, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Call succeeded with %+v; want %s", resp, tt.reason)
			}
			fe := failure.As(err)
			if fe.Reason != tt.reason || fe.Class != tt.class || fe.RetryAfter != tt.retryAfter {
				t.Errorf("failure = %s %s retryAfter %s, want %s %s retryAfter %s (%v)",
					fe.Class, fe.Reason, fe.RetryAfter, tt.class, tt.reason, tt.retryAfter, err)
			}
			if (resp != nil) != tt.withResp {
				t.Errorf("response returned = %v, want %v", resp != nil, tt.withResp)
			}
			msg := err.Error()
			for _, want := range append(tt.inMessage, "call "+srv.URL+"/hook:") {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
			if strings.Contains(msg, "querysecret") || strings.Contains(msg, "sig=leak") {
				t.Errorf("message %q shows a URL query", msg)
			}
			if len(msg) > snippetBytes+300 {
				t.Errorf("message is %d bytes long, want the body truncated", len(msg))
			}
		})
	}
}

func TestCallReturnsTheDecodedResponse(t *testing.T) {
	srv := httptest.NewServer(answer(200, nil, `{"children": [], "requeueAfter": "30s", "events": [{"reason": "Scaled"}]}`))
	defer srv.Close()
	resp, err := newTestClient(t, Config{}).Call(context.Background(), Endpoint{URL: srv.URL}, testRequest("d1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Children == nil || len(*resp.Children) != 0 || resp.RequeueAfter != "30s" || resp.Events[0].Reason != "Scaled" {
		t.Errorf("response = %+v", resp)
	}
}

func TestCallRefusesAnOversizedBodyWhole(t *testing.T) {
	const size = 20 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// A valid response but for its size: refusing it must not depend on
		// the JSON breaking where the reading stopped.
		_, _ = io.WriteString(w, `{"status": {"blob": "`)
		_, _ = io.WriteString(w, strings.Repeat("a", size))
		_, _ = io.WriteString(w, `"}}`)
	}))
	defer srv.Close()
	resp, err := newTestClient(t, Config{}).Call(context.Background(), Endpoint{URL: srv.URL}, testRequest("d1", 1))
	if resp != nil {
		t.Errorf("a response was decoded from a %d-byte body", size)
	}
	fe := failure.As(err)
	if err == nil || fe.Reason != ReasonInvalidResponse || fe.Class != failure.Temporary {
		t.Fatalf("Call error = %v (%s %s), want temporary %s", err, fe.Class, fe.Reason, ReasonInvalidResponse)
	}
	if want := fmt.Sprintf("larger than %d bytes", DefaultMaxResponseBytes); !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not contain %q", err, want)
	}
}

func TestCallAcceptsABodyOfExactlyTheLimit(t *testing.T) {
	body := `{"requeueAfter": "1s"}`
	srv := httptest.NewServer(answer(200, nil, body))
	defer srv.Close()
	c := newTestClient(t, Config{MaxResponseBytes: int64(len(body))})
	if _, err := c.Call(context.Background(), Endpoint{URL: srv.URL}, testRequest("d1", 1)); err != nil {
		t.Errorf("Call = %v, want a body of exactly MaxResponseBytes accepted", err)
	}
	c = newTestClient(t, Config{MaxResponseBytes: int64(len(body)) - 1})
	if _, err := c.Call(context.Background(), Endpoint{URL: srv.URL}, testRequest("d1", 1)); failure.As(err).Reason != ReasonInvalidResponse {
		t.Errorf("Call = %v, want a body one byte over the limit refused", err)
	}
}

func TestCallWithACanceledContextIsNotATimeout(t *testing.T) {
	srv := httptest.NewServer(answer(200, nil, ""))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newTestClient(t, Config{}).Call(ctx, Endpoint{URL: srv.URL}, testRequest("d1", 1))
	if fe := failure.As(err); fe.Reason != ReasonCanceled || !errors.Is(err, context.Canceled) {
		t.Errorf("Call = %v (%s), want %s wrapping context.Canceled", err, fe.Reason, ReasonCanceled)
	}
}

func TestCallRefusesWhatCannotBeSent(t *testing.T) {
	tests := []struct {
		name   string
		ep     Endpoint
		req    *callbacks.Request
		reason string
	}{
		{"scheme other than http", Endpoint{URL: "ftp://handler/x"}, testRequest("d1", 1), ReasonInvalidEndpoint},
		{"no host", Endpoint{URL: "http:///x"}, testRequest("d1", 1), ReasonInvalidEndpoint},
		{"unparseable URL keeps its password out", Endpoint{URL: "http://user:pw@[::1/x?token=querysecret"}, testRequest("d1", 1), ReasonInvalidEndpoint},
		{"negative timeout", Endpoint{URL: "http://handler", Timeout: -time.Second}, testRequest("d1", 1), ReasonInvalidEndpoint},
		{"request without uid", Endpoint{URL: "http://handler"}, testRequest("", 1), ReasonInvalidRequest},
		{"no request", Endpoint{URL: "http://handler"}, nil, ReasonInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTestClient(t, Config{}).Call(context.Background(), tt.ep, tt.req)
			fe := failure.As(err)
			if err == nil || fe.Class != failure.Permanent || fe.Reason != tt.reason {
				t.Fatalf("Call = %v (%s %s), want permanent %s", err, fe.Class, fe.Reason, tt.reason)
			}
			if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "querysecret") {
				t.Errorf("message %q shows a secret", err)
			}
		})
	}
}

func TestNewValidatesAndDefaultsConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"zero config takes the defaults", Config{}, false},
		{"negative MaxResponseBytes", Config{MaxResponseBytes: -1}, true},
		{"negative DefaultTimeout", Config{DefaultTimeout: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (c.maxBody != DefaultMaxResponseBytes || c.defaultTimeout != DefaultTimeout || c.now == nil || c.log == nil) {
				t.Errorf("defaults not applied: %+v", c)
			}
		})
	}
}
