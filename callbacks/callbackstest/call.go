package callbackstest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/opgate/opgate/callbacks"
)

// CallOption changes how Call delivers a request.
type CallOption func(*callConfig)

type callConfig struct {
	secret     []byte
	signedAt   time.Time
	path       string
	wantStatus int // 0: any 2xx
}

// Signed signs the request with secret, as the gateway does when the
// WebhookOperator sets hmacSecretRef, with the current time as
// webhook-timestamp.
func Signed(secret []byte) CallOption {
	return func(c *callConfig) { c.secret = secret }
}

// SignedAt is Signed with a given webhook-timestamp, to test a verifier's
// replay window against its injected clock. A Mux gives the handler
// deadline − at from the request's arrival: for a handler that looks at its
// context's deadline, build the request WithDeadline(at.Add(timeout)).
func SignedAt(secret []byte, at time.Time) CallOption {
	return func(c *callConfig) { c.secret, c.signedAt = secret, at }
}

// AtPath POSTs to path instead of "/", for handlers that route on the
// callback's path.
func AtPath(path string) CallOption {
	return func(c *callConfig) { c.path = path }
}

// ExpectStatus makes Call expect that HTTP status code instead of any 2xx.
// The body of a non-2xx answer is decoded when it is a valid response, as a
// Mux's error answers are.
func ExpectStatus(code int) CallOption {
	return func(c *callConfig) { c.wantStatus = code }
}

// Call POSTs req to h in memory with the gateway's headers and returns the
// decoded answer. The test fails when req breaks the request schema (a
// mistake in the test), when the status code is not the expected one, or
// when a 2xx answer breaks the response schema, which the gateway would
// refuse with an InvalidResponse Warning Event.
func Call(t testing.TB, h http.Handler, req *callbacks.Request, opts ...CallOption) *Result {
	t.Helper()
	cfg := callConfig{path: "/"}
	for _, o := range opts {
		o(&cfg)
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("callbackstest: encode request: %v", err)
	}
	if err := callbacks.ValidateRequest(body); err != nil {
		t.Fatalf("callbackstest: the test's request is not one the gateway would send: %v", err)
	}

	httpReq := httptest.NewRequest(http.MethodPost, cfg.path, bytes.NewReader(body))
	setGatewayHeaders(t, httpReq.Header, req.UID, body, cfg)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httpReq)

	res := &Result{t: t, Request: req, StatusCode: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	success := rec.Code >= 200 && rec.Code < 300
	switch {
	case cfg.wantStatus == 0 && !success:
		t.Fatalf("callbackstest: handler answered %d, want 2xx; body: %s", rec.Code, res.Body)
	case cfg.wantStatus != 0 && rec.Code != cfg.wantStatus:
		t.Fatalf("callbackstest: handler answered %d, want %d; body: %s", rec.Code, cfg.wantStatus, res.Body)
	}
	resp, err := callbacks.DecodeResponse(res.Body)
	switch {
	case err != nil && success:
		t.Fatalf("callbackstest: the gateway would refuse this answer: %v\nbody: %s", err, res.Body)
	case err != nil:
		return res // a non-2xx answer needs no valid body
	}
	res.Response = resp
	res.status = normalizeNumbers(t, resp.Status)
	return res
}

func setGatewayHeaders(t testing.TB, h http.Header, uid string, body []byte, cfg callConfig) {
	t.Helper()
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("User-Agent", "opgate/callbackstest")
	h.Set(callbacks.HeaderIdempotencyKey, uid)
	h.Set(callbacks.HeaderWebhookID, uid)
	at := cfg.signedAt
	if at.IsZero() {
		at = time.Now()
	}
	h.Set(callbacks.HeaderWebhookTimestamp, callbacks.FormatTimestamp(at))
	if len(cfg.secret) > 0 {
		sig, err := callbacks.Sign(cfg.secret, uid, at, body)
		if err != nil {
			t.Fatalf("callbackstest: sign: %v", err)
		}
		h.Set(callbacks.HeaderWebhookSignature, sig)
	}
}

// normalizeNumbers re-decodes a status the way objects from the API are
// decoded, so integers compare as int64 rather than float64.
func normalizeNumbers(t testing.TB, status map[string]any) map[string]any {
	t.Helper()
	if status == nil {
		return nil
	}
	data, err := json.Marshal(status)
	if err != nil {
		t.Fatalf("callbackstest: re-encode status: %v", err)
	}
	var out map[string]any
	if err := utiljson.Unmarshal(data, &out); err != nil {
		t.Fatalf("callbackstest: re-decode status: %v", err)
	}
	return out
}
