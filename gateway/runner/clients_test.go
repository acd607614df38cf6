package runner

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// http2Server counts the connections clients open to it.
func http2Server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "HTTP/2 expected", http.StatusHTTPVersionNotSupported)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestInformersTalkOnAConnectionOfTheirOwn(t *testing.T) {
	srv, conns := http2Server(t)
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: -1}
	writes, watches, err := dynamicREST(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	get := func(rc *rest.RESTClient) {
		t.Helper()
		if err := rc.Get().AbsPath("/api").Do(context.Background()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	get(writes)
	get(writes)
	if n := conns.Load(); n != 1 {
		t.Fatalf("two writes opened %d connections, want one shared", n)
	}
	get(watches)
	get(writes)
	get(watches)
	if n := conns.Load(); n != 2 {
		t.Errorf("writes and informers opened %d connections, want two: one each", n)
	}
}

func TestInformersListsWaitOnTheWritesRateLimit(t *testing.T) {
	srv, _ := countingServer(t)
	writes, watches, err := dynamicREST(&rest.Config{Host: srv.URL, QPS: 0.1, Burst: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := writes.Get().AbsPath("/api").Do(context.Background()).Error(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := watches.Get().AbsPath("/api").Do(ctx).Error(); err == nil {
		t.Error("an informer's list got a token the writes had taken: two limits where the flag sets one")
	}
}
