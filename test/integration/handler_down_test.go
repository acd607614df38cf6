package integration

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

// switchedServer serves a handler on a fixed address that the test can
// take down (listener and connections closed: calls are refused) and
// bring back.
type switchedServer struct {
	t    *testing.T
	addr string
	h    http.Handler

	mu  sync.Mutex
	srv *http.Server
}

func newSwitchedServer(t *testing.T, h http.Handler) *switchedServer {
	s := &switchedServer{t: t, addr: "127.0.0.1:0", h: h}
	s.up()
	t.Cleanup(s.down)
	return s
}

func (s *switchedServer) url() string { return "http://" + s.addr }

func (s *switchedServer) up() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("handler back up on %s: %v", s.addr, err)
	}
	s.addr = ln.Addr().String() // the port picked the first time, kept after
	s.srv = &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
	go func(srv *http.Server) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Errorf("handler server: %v", err)
		}
	}(s.srv)
}

func (s *switchedServer) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// handlerDowntime is how long the handler stays down:
// OPGATE_HANDLER_DOWNTIME (a Go duration), a minute by default.
func handlerDowntime(t *testing.T) time.Duration {
	v := os.Getenv("OPGATE_HANDLER_DOWNTIME")
	if v == "" {
		return time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("OPGATE_HANDLER_DOWNTIME: %v", err)
	}
	return d
}

func TestHandlerDownForAMinuteLosesNoChange(t *testing.T) {
	const maxDelay = 5 * time.Second
	ns := newNamespace(t)
	run := newFaultRun(t, ns)
	srv := newSwitchedServer(t, run.chk.Recorder.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeAnswer(w, req)
	})))
	startGateway(t, run.expect(faultOperator(t, "down", ns, srv.url(), maxDelay, nil)))
	ctx := context.Background()
	for _, name := range []string{"a", "b", "c"} {
		if err := run.create(ctx, name, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	run.chk.AssertEventually(t, 30*time.Second)

	downtime := handlerDowntime(t)
	srv.down()
	down := time.Now()
	// Every kind of change while the handler is away.
	for _, step := range []func() error{
		func() error { return run.setImage(ctx, "a", "v2") },
		func() error { return run.remove(ctx, "b") },
		func() error { return run.create(ctx, "d", "v1") },
		func() error { return run.setImage(ctx, "c", "v2") },
		func() error { return run.setImage(ctx, "c", "v3") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	// The fault lasts its full time: what is measured is the recovery
	// after it.
	time.Sleep(time.Until(down.Add(downtime)))
	srv.up()
	_, took := run.chk.AssertEventually(t, maxDelay+60*time.Second)
	t.Logf("handler down %s, retries capped at %s: invariants hold %s after it came back",
		downtime, maxDelay, took.Round(100*time.Millisecond))
}
