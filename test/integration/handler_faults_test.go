package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// faultyAttempts is how many attempts of each delivery meet the fault
// before the handler answers well.
const faultyAttempts = 2

// handlerTimeout is the scenarios' handler timeout: short, so that the
// slow handler's scenario stays short.
const handlerTimeout = 2 * time.Second

// handlerFaults are the ways a handler can answer badly. Each writes its
// bad answer to w for the request it was given.
var handlerFaults = []struct {
	name string
	// fault answers badly; nil means the answer is good, as when the
	// fault is not one (an empty body is "nothing to do").
	fault func(w http.ResponseWriter, r *http.Request, req callbacks.Request)
	// firstTime: the gateway takes the faulty answer as a success.
	firstTime bool
}{
	{name: "5xx", fault: func(w http.ResponseWriter, _ *http.Request, _ callbacks.Request) {
		http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
	}},
	{name: "slow past its timeout", fault: func(w http.ResponseWriter, r *http.Request, req callbacks.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(handlerTimeout + time.Second):
		}
		writeAnswer(w, req) // too late: the gateway has stopped waiting
	}},
	{name: "garbage", fault: func(w http.ResponseWriter, _ *http.Request, _ callbacks.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
	}},
	{name: "empty body", firstTime: true, fault: func(w http.ResponseWriter, _ *http.Request, _ callbacks.Request) {
		w.WriteHeader(http.StatusOK)
	}},
	{name: "50 MiB body", fault: func(w http.ResponseWriter, _ *http.Request, _ callbacks.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := []byte(strings.Repeat("a", 1<<20))
		if _, err := w.Write([]byte(`{"status": {"message": "`)); err != nil {
			return
		}
		for range 50 {
			if _, err := w.Write(chunk); err != nil {
				return // the gateway stopped reading at its limit
			}
		}
		_, _ = w.Write([]byte(`"}}`))
	}},
	{name: "wrong content type", firstTime: true, fault: func(w http.ResponseWriter, _ *http.Request, req callbacks.Request) {
		// The body is judged, not the header: a framework's default
		// text/plain on a valid answer is still the handler's answer.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		writeAnswerBody(w, req)
	}},
	{name: "redirect", fault: func(w http.ResponseWriter, r *http.Request, _ callbacks.Request) {
		http.Redirect(w, r, "http://"+r.Host+"/moved", http.StatusTemporaryRedirect)
	}},
	{name: "connection closed mid-body", fault: func(w http.ResponseWriter, _ *http.Request, _ callbacks.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"status": {"message": "image `))
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		if conn, _, err := rc.Hijack(); err == nil {
			_ = conn.Close()
		}
	}},
}

func TestHandlerFaultsLoseNoChange(t *testing.T) {
	for _, tt := range handlerFaults {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			run := newFaultRun(t, ns)
			srv := newRecordedServer(t, run, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				req, err := decodeRequest(r)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				if req.Attempt <= faultyAttempts {
					tt.fault(w, r, req)
					return
				}
				writeAnswer(w, req)
			}))
			op := run.expect(faultOperator(t, "faulty", ns, srv.URL, 2*time.Second, func(s *spec.OperatorSpec) {
				s.Handler.Timeout = &spec.Duration{Duration: handlerTimeout}
			}))
			startGateway(t, op)
			start := time.Now()
			run.lifecycle("kept", false)
			run.lifecycle("gone", true)
			rep, took := run.chk.AssertEventually(t, 90*time.Second)
			t.Logf("%s: converged %s after the last change (%s since the first)", tt.name, took.Round(100*time.Millisecond), since(start))
			if tt.firstTime {
				// A success on the first attempt: repeats can only come
				// from at-least-once races, reported for the record.
				t.Logf("%s: %d repeated deliveries", tt.name, rep.Duplicates)
			}
		})
	}
}
