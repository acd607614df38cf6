package runner

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
	srv, hits := countingServer(t)
	writes, watches, err := dynamicREST(&rest.Config{Host: srv.URL, QPS: 0.1, Burst: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := writes.Get().AbsPath("/api").Do(context.Background()).Error(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := watches.Get().AbsPath("/api").Do(ctx).Error(); err == nil || !strings.Contains(err.Error(), "--kube-api-qps") {
		t.Errorf("error %v: an informer's list got a token the writes had taken (two limits where the flag sets one), or failed otherwise", err)
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests reached the server, want 1", hits.Load())
	}
}

// The gateway's informers (parents, related kinds, CRDs and operators
// through Watcher, children through WatchREST) reach the API server on
// another connection than its writes (REST).
func TestNewWiresTheInformersToTheirOwnConnection(t *testing.T) {
	var mu sync.Mutex
	connOf := map[string]int64{} // request path → connection
	var next atomic.Int64
	type connKey struct{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		connOf[r.URL.Path] = r.Context().Value(connKey{}).(int64)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"apiVersion":"v1","kind":"List","items":[]}`)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, next.Add(1))
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	g, err := New(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}},
		Options{Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := g.deps.REST.Get().AbsPath("/writes").Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "g", Version: "v1", Resource: "parents"}
	if _, err := g.deps.Watcher.List(ctx, gvr, "ns", metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if g.deps.WatchREST == nil {
		t.Fatal("no WatchREST: the child informers would share the writes' connection")
	}
	if err := g.deps.WatchREST.Get().AbsPath("/children").Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	writes, parents, children := connOf["/writes"], connOf["/apis/g/v1/namespaces/ns/parents"], connOf["/children"]
	if parents == 0 || writes == parents || children != parents {
		t.Errorf("connections: writes %d, parents' list %d, children's %d (requests %v); want the informers on one of their own", writes, parents, children, connOf)
	}
}
