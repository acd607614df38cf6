package callbacks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
)

const widget = `
	apiVersion: example.com/v1
	kind: Widget
	metadata: {name: w1, namespace: demo}
	spec: {size: 3}`

// answer returns a handler that answers with a status naming itself, so a
// test can tell which handler the Mux chose.
func answer(name string) callbacks.HandlerFunc {
	return func(context.Context, *callbacks.Request) (*callbacks.Response, error) {
		return callbacks.Status(map[string]any{"handledBy": name}), nil
	}
}

func TestMuxRoutesByCallbackIDThenByEvent(t *testing.T) {
	mux := callbacks.NewMux()
	mux.Handle("resize", answer("resize"))
	mux.HandleEvent(callbacks.EventUpdate, answer("update event"))
	mux.HandleEvent(callbacks.EventSync, answer("sync event"))

	tests := []struct {
		name     string
		event    callbacks.Event
		callback string
		want     string
	}{
		{"the callback id wins over the event", callbacks.EventUpdate, "resize", "resize"},
		{"the id routes whatever the event", callbacks.EventSync, "resize", "resize"},
		{"an unknown id falls back to the event", callbacks.EventUpdate, "relabel", "update event"},
		{"another event goes to its own handler", callbacks.EventSync, "status", "sync event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := callbackstest.NewRequest(t, tt.event, widget, callbackstest.WithCallback(tt.callback))
			res := callbackstest.Call(t, mux, req)
			if got := res.StatusField("handledBy"); got != tt.want {
				t.Errorf("handled by %v, want %q", got, tt.want)
			}
		})
	}
}

func TestMuxRoutesByPathThenCallbackIDThenEvent(t *testing.T) {
	mux := callbacks.NewMux()
	mux.Handle("/create", answer("path /create"))
	mux.Handle("/update", answer("path /update"))
	mux.Handle("/v2/update", answer("path /v2/update"))
	mux.Handle("resize", answer("id resize"))
	mux.HandleEvent(callbacks.EventUpdate, answer("update event"))

	tests := []struct {
		name     string
		path     string
		event    callbacks.Event
		callback string
		want     string
	}{
		// The README's registration: ids and paths that differ from the
		// handler's own names still reach it by path.
		{"a path routes whatever the id", "/create", callbacks.EventCreate, "create-deployment", "path /create"},
		{"the path wins over a matching id", "/update", callbacks.EventUpdate, "resize", "path /update"},
		{"an unregistered path falls back to the id", "/hooks/resize", callbacks.EventUpdate, "resize", "id resize"},
		{"then to the event", "/", callbacks.EventUpdate, "relabel", "update event"},
		{"a path matches exactly, not as a prefix", "/create/x", callbacks.EventUpdate, "relabel", "update event"},
		// A handler URL with a base path (url: http://h/memcached, or
		// service.path) is joined with the callback's path by the gateway.
		{"a path under the handler URL's base path routes by its callback path", "/memcached/create", callbacks.EventCreate, "create-deployment", "path /create"},
		{"the longest registered path that ends the request path wins", "/api/v2/update", callbacks.EventUpdate, "relabel", "path /v2/update"},
		{"a suffix matches whole segments only", "/api/xcreate", callbacks.EventUpdate, "relabel", "update event"},
		// A handler URL whose own path ends in a registered path
		// (url: http://h/app/delete), its callbacks routed by id: the id
		// wins over the suffix, or every event would reach /delete.
		{"a registered id wins over a suffix of the handler URL's own path", "/app/update", callbacks.EventUpdate, "resize", "id resize"},
		{"an unregistered id under such a URL still routes by suffix", "/app/update", callbacks.EventUpdate, "relabel", "path /update"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := callbackstest.NewRequest(t, tt.event, widget, callbackstest.WithCallback(tt.callback))
			res := callbackstest.Call(t, mux, req, callbackstest.AtPath(tt.path))
			if got := res.StatusField("handledBy"); got != tt.want {
				t.Errorf("handled by %v, want %q", got, tt.want)
			}
		})
	}
}

func TestMuxAnswersAnUnknownPathWithA404NamingIt(t *testing.T) {
	mux := callbacks.NewMux()
	mux.Handle("/create", answer("create"))
	req := callbackstest.NewRequest(t, callbacks.EventDelete, widget, callbackstest.WithCallback("cleanup"))
	res := callbackstest.Call(t, mux, req, callbackstest.AtPath("/delete"), callbackstest.ExpectStatus(http.StatusNotFound))
	if msg := res.ReportedError().Message; !strings.Contains(msg, `"/delete"`) || !strings.Contains(msg, `"cleanup"`) {
		t.Errorf("message %q should name the path and the callback", msg)
	}
}

func TestMuxAnswersUnknownCallbacksWithTemporary404(t *testing.T) {
	mux := callbacks.NewMux()
	mux.HandleEvent(callbacks.EventCreate, answer("create"))
	req := callbackstest.NewRequest(t, callbacks.EventDelete, widget, callbackstest.WithCallback("cleanup"))
	res := callbackstest.Call(t, mux, req, callbackstest.ExpectStatus(http.StatusNotFound))
	if res.IsPermanentError() {
		t.Fatalf("body %s, want a temporary error: registering the handler cures it", res.Body)
	}
	if msg := res.ReportedError().Message; !strings.Contains(msg, `"cleanup"`) || !strings.Contains(msg, `"delete"`) {
		t.Errorf("message %q should name the callback and the event", msg)
	}
}

func TestMuxTurnsReturnedErrorsIntoErrorAnswers(t *testing.T) {
	tests := []struct {
		name          string
		resp          *callbacks.Response
		err           error
		wantPermanent bool
		wantMessage   string
		wantRetry     string
		wantStatus    any // status.phase kept from the response, or nil
	}{
		{
			name:        "a plain error is temporary without retryAfter",
			err:         errors.New("database not ready"),
			wantMessage: "database not ready",
		},
		{
			name:        "Temporary carries its retryAfter",
			err:         callbacks.Temporary("image tag is empty", 10*time.Second),
			wantMessage: "image tag is empty",
			wantRetry:   "10s",
		},
		{
			name:          "Permanent is permanent",
			err:           callbacks.Permanent("image name is invalid"),
			wantPermanent: true,
			wantMessage:   "image name is invalid",
		},
		{
			name:          "a wrapped Permanent keeps its class and the whole message",
			err:           fmt.Errorf("parse spec.image: %w", callbacks.Permanent("uppercase letters")),
			wantPermanent: true,
			wantMessage:   "parse spec.image: uppercase letters",
		},
		{
			name:        "the response returned with an error is still sent",
			resp:        callbacks.Status(map[string]any{"phase": "Degraded"}),
			err:         errors.New("one replica is down"),
			wantMessage: "one replica is down",
			wantStatus:  "Degraded",
		},
		{
			name:        "an empty message is replaced, as the schema refuses it",
			err:         errors.New(""),
			wantMessage: "handler failed without a message",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := callbacks.NewMux()
			mux.HandleEvent(callbacks.EventCreate, func(context.Context, *callbacks.Request) (*callbacks.Response, error) {
				return tt.resp, tt.err
			})
			res := callbackstest.Call(t, mux, callbackstest.NewRequest(t, callbacks.EventCreate, widget),
				callbackstest.ExpectStatus(http.StatusOK))
			got := res.ReportedError()
			if got.Permanent != tt.wantPermanent || got.Message != tt.wantMessage || got.RetryAfter != tt.wantRetry {
				t.Errorf("error = %+v, want message %q, permanent %v, retryAfter %q", *got, tt.wantMessage, tt.wantPermanent, tt.wantRetry)
			}
			if phase := res.StatusField("phase"); phase != tt.wantStatus {
				t.Errorf("status.phase = %v, want %v", phase, tt.wantStatus)
			}
		})
	}
}

func TestMuxAnswersNilWithAnEmptyResponse(t *testing.T) {
	mux := callbacks.NewMux()
	mux.HandleEvent(callbacks.EventTimer, func(context.Context, *callbacks.Request) (*callbacks.Response, error) {
		return nil, nil
	})
	res := callbackstest.Call(t, mux, callbackstest.NewRequest(t, callbacks.EventTimer, widget))
	if got := strings.TrimSpace(string(res.Body)); got != "{}" {
		t.Errorf("body = %s, want {}", got)
	}
}

// A panic is answered with a temporary 500 that keeps its value out: the
// answer becomes a Warning Event on the object, readable by anyone who may
// read the object, and a panic's value may be anything the handler held.
// The value and the stack go to the handler's log.
func TestMuxTurnsAPanicIntoATemporary500WithoutItsValue(t *testing.T) {
	var logs bytes.Buffer
	mux := callbacks.NewMux(callbacks.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	mux.HandleEvent(callbacks.EventCreate, func(context.Context, *callbacks.Request) (*callbacks.Response, error) {
		panic("password=hunter2")
	})
	res := callbackstest.Call(t, mux, callbackstest.NewRequest(t, callbacks.EventCreate, widget),
		callbackstest.ExpectStatus(http.StatusInternalServerError))
	if !res.IsTemporaryError() || !strings.Contains(res.ReportedError().Message, "panicked") {
		t.Errorf("body %s, want a temporary error saying the handler panicked", res.Body)
	}
	if strings.Contains(string(res.Body), "hunter2") {
		t.Errorf("body %s carries the panic's value", res.Body)
	}
	if l := logs.String(); !strings.Contains(l, `"panic":"password=hunter2"`) || !strings.Contains(l, "mux_test.go") {
		t.Errorf("logged %s, want the panic's value and a stack naming the handler's file", l)
	}
}

// The gateway sends deadline = its clock + timeout; the handler's clock may
// be minutes off (the verifier allows 5 minutes of skew). With the clocks in
// step the handler's context ends at the deadline as sent, when the gateway
// stops waiting. Out of step it ends when the time the gateway gave the
// call, less the second webhook-timestamp may have rounded away, has passed
// since the request arrived, whichever clock is ahead: never after the
// gateway stops waiting, so a retry of a timed-out call does not meet it
// still running.
func TestMuxMeasuresTheHandlersDeadlineFromTheRequestsArrival(t *testing.T) {
	secret := []byte("s3cret")
	sent := time.Now().Truncate(time.Second).Add(400 * time.Millisecond) // the gateway's clock as it sends
	deadline := sent.Add(10 * time.Second)
	given := deadline.Sub(sent.Truncate(time.Second)) - time.Second // deadline − webhook-timestamp − its rounding: 9.4 s
	tests := []struct {
		name   string
		skew   time.Duration // the handler's clock minus the gateway's, the network's delay included
		inSync bool
	}{
		{"clocks that agree", 5 * time.Millisecond, true},
		{"clocks that agree, a slow network", 1200 * time.Millisecond, true},
		{"a handler clock 15 s ahead", 15 * time.Second, false},
		{"a handler clock 15 s behind", -15 * time.Second, false},
		{"a handler clock a second behind", -time.Second, false},
		{"a handler clock 4 minutes ahead, inside the replay window", 4 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := sent.Add(tt.skew)
			clock := func() time.Time { return arrived }
			verifier, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: secret, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			var got time.Time
			mux := callbacks.NewMux(callbacks.WithVerifier(verifier), callbacks.WithClock(clock))
			mux.HandleEvent(callbacks.EventCreate, func(ctx context.Context, _ *callbacks.Request) (*callbacks.Response, error) {
				got, _ = ctx.Deadline()
				return nil, nil
			})
			req := callbackstest.NewRequest(t, callbacks.EventCreate, widget, callbackstest.WithDeadline(deadline))
			callbackstest.Call(t, mux, req, callbackstest.SignedAt(secret, sent))
			want := arrived.Add(given)
			if tt.inSync {
				want = deadline
			}
			if !got.Equal(want) {
				t.Errorf("context deadline = %v, want %v (%v after the request arrived)", got, want, want.Sub(arrived))
			}
			if gatewayStops := deadline.Add(tt.skew); got.After(gatewayStops) {
				t.Errorf("context deadline = %v, after the gateway stops waiting (%v on the handler's clock)", got, gatewayStops)
			}
		})
	}
}

func TestMuxTakesTheDeadlineAsSentWithoutATimestamp(t *testing.T) {
	deadline := time.Now().Add(time.Minute).Truncate(time.Second)
	var got time.Time
	mux := callbacks.NewMux()
	mux.HandleEvent(callbacks.EventCreate, func(ctx context.Context, _ *callbacks.Request) (*callbacks.Response, error) {
		got, _ = ctx.Deadline()
		return nil, nil
	})
	body := `{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":1,` +
		`"deadline":"` + deadline.UTC().Format(time.RFC3339) + `","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}}`
	if rec := post(t, mux, http.MethodPost, "/", body); rec.Code != http.StatusOK {
		t.Fatalf("code = %d, body %s", rec.Code, rec.Body)
	}
	if !got.Equal(deadline) {
		t.Errorf("context deadline = %v, want the request's %v", got, deadline)
	}
}

// post sends a raw body, for the requests callbackstest would refuse to
// build.
func post(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

func TestMuxRefusesMalformedRequests(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		body        string
		wantCode    int
		wantMessage string
	}{
		{"a body that is not JSON is a bad request", http.MethodPost, `{"event":`, http.StatusBadRequest, "not valid JSON"},
		{"a request without object is a bad request", http.MethodPost,
			`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":1,"deadline":"2030-01-01T00:00:00Z"}`,
			http.StatusBadRequest, "/object: missing property"},
		{"an unknown event is a bad request", http.MethodPost,
			`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"explode","operator":"o","callback":"c","attempt":1,"deadline":"2030-01-01T00:00:00Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}}`,
			http.StatusBadRequest, "/event"},
		{"an object whose apiVersion does not parse is a bad request", http.MethodPost,
			`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":1,"deadline":"2030-01-01T00:00:00Z","object":{"apiVersion":"a/b/c","kind":"ConfigMap","metadata":{"name":"x"}}}`,
			http.StatusBadRequest, `decode request: object: object has no kind, or an apiVersion "a/b/c" that does not parse`},
		{"a number no float holds names where it is", http.MethodPost,
			`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":1,"deadline":"2030-01-01T00:00:00Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"n":1e400}}}`,
			http.StatusBadRequest, "decode request: object: at /data/n: number 1e400 does not fit a 64-bit float"},
		{"a body over the limit is too large", http.MethodPost, `{"pad":"` + strings.Repeat("x", 2048) + `"}`, http.StatusRequestEntityTooLarge, "over 1024 bytes"},
		{"a GET of a callback is not allowed", http.MethodGet, "", http.StatusMethodNotAllowed, "POST"},
	}
	mux := callbacks.NewMux(callbacks.WithMaxRequestBytes(1024))
	mux.HandleEvent(callbacks.EventCreate, answer("create"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(t, mux, tt.method, "/create", tt.body)
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			resp, err := callbacks.DecodeResponse(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("the refusal is not a contract response: %v", err)
			}
			// Only a malformed request stays wrong however the handler is configured.
			wantPermanent := tt.wantCode == http.StatusBadRequest
			if resp.Error == nil || resp.Error.Permanent != wantPermanent || !strings.Contains(resp.Error.Message, tt.wantMessage) {
				t.Errorf("error = %+v, want one with permanent %v containing %q", resp.Error, wantPermanent, tt.wantMessage)
			}
		})
	}
}

func TestMuxVerifiesSignatures(t *testing.T) {
	secret := []byte("whsec_c2VjcmV0LWtleS1vZi10aGUtdGVzdA==")
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	previous := []byte("previous-raw-key")
	verifier, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: secret, Secrets: [][]byte{previous}, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	mux := callbacks.NewMux(callbacks.WithVerifier(verifier))
	mux.HandleEvent(callbacks.EventCreate, answer("create"))

	tests := []struct {
		name     string
		opts     []callbackstest.CallOption
		wantCode int
	}{
		{"a fresh signature with the secret is accepted", []callbackstest.CallOption{callbackstest.SignedAt(secret, now.Add(-time.Minute))}, http.StatusOK},
		{"an unsigned request is refused", nil, http.StatusUnauthorized},
		{"another secret is refused", []callbackstest.CallOption{callbackstest.SignedAt([]byte("other"), now)}, http.StatusUnauthorized},
		{"a replay outside the window is refused", []callbackstest.CallOption{callbackstest.SignedAt(secret, now.Add(-time.Hour))}, http.StatusUnauthorized},
		{"a timestamp from beyond the window ahead is refused", []callbackstest.CallOption{callbackstest.SignedAt(secret, now.Add(time.Hour))}, http.StatusUnauthorized},
		{"the previous secret is accepted while it rotates", []callbackstest.CallOption{callbackstest.SignedAt(previous, now)}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := callbackstest.NewRequest(t, callbacks.EventCreate, widget)
			res := callbackstest.Call(t, mux, req, append(tt.opts, callbackstest.ExpectStatus(tt.wantCode))...)
			if tt.wantCode != http.StatusOK && res.IsPermanentError() {
				t.Errorf("body %s, want a temporary error: rotating the secret cures it", res.Body)
			}
		})
	}
}

func TestMuxServesHealthz(t *testing.T) {
	mux := callbacks.NewMux()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := post(t, mux, method, callbacks.HealthPath, "")
		if rec.Code != http.StatusOK {
			t.Errorf("%s %s = %d, want 200", method, callbacks.HealthPath, rec.Code)
		}
	}
}

func TestMuxRefusesConflictingRegistrations(t *testing.T) {
	tests := []struct {
		name     string
		register func(*callbacks.Mux)
	}{
		{"the same id twice", func(m *callbacks.Mux) { m.Handle("a", answer("1")); m.Handle("a", answer("2")) }},
		{"the same path twice", func(m *callbacks.Mux) { m.Handle("/a", answer("1")); m.Handle("/a", answer("2")) }},
		{"the same event twice", func(m *callbacks.Mux) {
			m.HandleEvent(callbacks.EventSync, answer("1"))
			m.HandleEvent(callbacks.EventSync, answer("2"))
		}},
		{"an empty id", func(m *callbacks.Mux) { m.Handle("", answer("1")) }},
		{"a nil function", func(m *callbacks.Mux) { m.Handle("a", nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("registration did not panic")
				}
			}()
			tt.register(callbacks.NewMux())
		})
	}
}

func TestMuxHandlesConcurrentCalls(t *testing.T) {
	mux := callbacks.NewMux()
	mux.HandleEvent(callbacks.EventSync, func(_ context.Context, req *callbacks.Request) (*callbacks.Response, error) {
		return callbacks.Status(map[string]any{"attempt": req.Attempt}), nil
	})
	done := make(chan error)
	for i := 1; i <= 8; i++ {
		go func() {
			rec := post(t, mux, http.MethodPost, "/", strings.Replace(
				`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"sync","operator":"o","callback":"c","attempt":N,"deadline":"2030-01-01T00:00:00Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}}`,
				"N", strconv.Itoa(i), 1))
			if want := fmt.Sprintf(`{"status":{"attempt":%d}}`, i); strings.TrimSpace(rec.Body.String()) != want {
				done <- fmt.Errorf("body %s, want %s", rec.Body, want)
				return
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
