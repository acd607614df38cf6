package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// docs/contract.md caps requeueAfter and retryAfter/Retry-After at
// the callback's retry.maxDelay (default 5 minutes): "a handler that asks
// for an hour is called again after maxDelay". gateway call, which "prints
// what the gateway would do with the answer", reports the hour.
func TestCallReportsRequeueAndRetryAfterCappedByMaxDelay(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer func(http.ResponseWriter)
		got    func(*callReport) string
		asked  func(*callReport) string
	}{
		{"requeueAfter", answerJSON(200, `{"requeueAfter":"1h"}`), func(r *callReport) string { return r.RequeueAfter }, func(r *callReport) string { return r.RequeueAfterAsked }},
		{"Retry-After", answerJSON(503, ``, "Retry-After", "3600"), func(r *callReport) string { return r.Outcome.RetryAfter }, func(r *callReport) string { return r.Outcome.RetryAfterAsked }},
		{"error.retryAfter", answerJSON(200, `{"error":{"message":"db down","retryAfter":"1h"}}`), func(r *callReport) string { return r.Outcome.RetryAfter }, func(r *callReport) string { return r.Outcome.RetryAfterAsked }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&recordingHandler{answer: tt.answer})
			defer srv.Close()
			r := runCall(t, "-f", "../../examples/operators/memcached.yaml", "--callback", "status", "--url", srv.URL+"/sync",
				"--object", callTestdata+"memcached.yaml", "-o", "json")
			if r.rep == nil {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := tt.got(r.rep); got != "5m0s" {
				t.Errorf("report says %s after %q; the gateway calls again after maxDelay, 5m0s", tt.name, got)
			}
			if got := tt.asked(r.rep); got != "1h0m0s" {
				t.Errorf("report says the handler asked %q, want 1h0m0s", got)
			}
		})
	}
}

// A delay within maxDelay is reported as asked, with nothing beside it.
func TestCallReportsARequeueWithinMaxDelayAsAsked(t *testing.T) {
	srv := httptest.NewServer(&recordingHandler{answer: answerJSON(200, `{"requeueAfter":"30s"}`)})
	defer srv.Close()
	r := runCall(t, "--url", srv.URL+"/sync", "--event", "sync", "--object", callTestdata+"memcached.yaml", "-o", "json")
	if r.rep == nil || r.rep.RequeueAfter != "30s" || r.rep.RequeueAfterAsked != "" {
		t.Errorf("exit %d: %s; want requeueAfter 30s and no asked value", r.code, r.stdout)
	}
}
