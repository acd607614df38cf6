package call

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/internal/version"
)

type delivery struct {
	header http.Header
	body   []byte
}

// recordingServer answers 200 with answerBody and hands over what it got.
func recordingServer(t *testing.T, answerBody string) (*httptest.Server, <-chan delivery) {
	t.Helper()
	got := make(chan delivery, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		got <- delivery{header: r.Header.Clone(), body: body}
		_, _ = io.WriteString(w, answerBody)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestCallSendsSignedIdempotentRequests(t *testing.T) {
	srv, got := recordingServer(t, "")
	secret := []byte("hmac-secret")
	verifier, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: secret, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, Config{})
	ep := Endpoint{URL: srv.URL, Timeout: 5 * time.Second, HMACSecret: secret, BearerToken: "tok"}

	// Two attempts of one delivery: a retry must look the same to the
	// handler's deduplication.
	for attempt := 1; attempt <= 2; attempt++ {
		req := testRequest("delivery-1", attempt)
		if _, err := c.Call(context.Background(), ep, req); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if !req.Deadline.IsZero() || req.APIVersion != "" {
			t.Errorf("attempt %d: Call modified the caller's request: %+v", attempt, req)
		}
		d := <-got
		for _, h := range []string{callbacks.HeaderIdempotencyKey, callbacks.HeaderWebhookID} {
			if v := d.header.Get(h); v != "delivery-1" {
				t.Errorf("attempt %d: %s = %q, want the uid", attempt, h, v)
			}
		}
		if err := verifier.Verify(d.header, d.body); err != nil {
			t.Errorf("attempt %d: signature does not verify: %v", attempt, err)
		}
		wantHeaders := map[string]string{
			"Authorization": "Bearer tok",
			"User-Agent":    version.UserAgent(),
			"Content-Type":  "application/json",
		}
		for h, want := range wantHeaders {
			if v := d.header.Get(h); v != want {
				t.Errorf("attempt %d: %s = %q, want %q", attempt, h, v, want)
			}
		}
		if err := callbacks.ValidateRequest(d.body); err != nil {
			t.Errorf("attempt %d: sent request breaks the contract: %v", attempt, err)
		}
		var sent callbacks.Request
		if err := json.Unmarshal(d.body, &sent); err != nil {
			t.Fatal(err)
		}
		if !sent.Deadline.Equal(now.Add(5*time.Second)) || sent.Attempt != attempt || sent.APIVersion != callbacks.APIVersion || sent.Kind != callbacks.RequestKind {
			t.Errorf("attempt %d: sent %+v, want deadline now+timeout and the contract's apiVersion and kind", attempt, sent)
		}
	}
}

func TestCallWithoutCredentialsSendsNoAuthHeaders(t *testing.T) {
	srv, got := recordingServer(t, "")
	if _, err := newTestClient(t, Config{}).Call(context.Background(), Endpoint{URL: srv.URL}, testRequest("d1", 1)); err != nil {
		t.Fatal(err)
	}
	d := <-got
	for _, h := range []string{"Authorization", callbacks.HeaderWebhookSignature} {
		if v := d.header.Get(h); v != "" {
			t.Errorf("%s = %q, want none", h, v)
		}
	}
	if d.header.Get(callbacks.HeaderWebhookTimestamp) == "" {
		t.Errorf("webhook-timestamp missing; it is sent even unsigned")
	}
}

func TestCallLogsOnlyAtDebugAndNeverSecrets(t *testing.T) {
	secrets := []string{"hmac-secret-value", "token-value", "query-value"}
	bigAnswer := `{"status": {"blob": "` + strings.Repeat("y", 4000) + `"}}`
	tests := []struct {
		name    string
		level   slog.Level
		wantLog bool
	}{
		{"debug records the call with a truncated body", slog.LevelDebug, true},
		{"info records nothing", slog.LevelInfo, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := recordingServer(t, bigAnswer)
			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: tt.level}))
			c := newTestClient(t, Config{Logger: logger})
			ep := Endpoint{URL: srv.URL + "/x?key=query-value", HMACSecret: []byte("hmac-secret-value"), BearerToken: "token-value"}
			if _, err := c.Call(context.Background(), ep, testRequest("d1", 1)); err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			if tt.wantLog != strings.Contains(out, "calling handler") || tt.wantLog != strings.Contains(out, "handler answered") {
				t.Errorf("logs = %q, want records: %v", out, tt.wantLog)
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("logs show %q: %s", s, out)
				}
			}
			for _, line := range strings.Split(out, "\n") {
				if len(line) > snippetBytes+500 {
					t.Errorf("log line of %d bytes, want the body truncated", len(line))
				}
			}
		})
	}
}
