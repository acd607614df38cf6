package runner

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// restClientFor builds a REST client as New builds the dynamic client's,
// against srv, counting the requests that reach it.
func restClientFor(t *testing.T, cfg *rest.Config) *rest.RESTClient {
	t.Helper()
	limitInTransport(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	cfg.GroupVersion, cfg.APIPath = nil, "/"
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestRateLimitMovesIntoTheTransportWithTheSameBucket(t *testing.T) {
	srv, hits := countingServer(t)
	rc := restClientFor(t, &rest.Config{Host: srv.URL, QPS: 10, Burst: 1})
	if rc.GetRateLimiter() != nil {
		t.Fatal("the REST client still has a limiter of its own: client-go would build a URL template per request")
	}
	// Burst 1 at 10 per second: the first request goes at once, each of
	// the next three waits ~100 ms for its token.
	start := time.Now()
	for range 4 {
		if err := rc.Get().AbsPath("/api").Do(context.Background()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if elapsed := time.Since(start); elapsed < 250*time.Millisecond {
		t.Errorf("4 requests at 10 QPS, burst 1, took %v: the limit did not hold", elapsed)
	}
	if hits.Load() != 4 {
		t.Errorf("%d requests reached the server, want 4", hits.Load())
	}
}

func TestRequestThatCannotGetATokenInTimeFailsWithoutReachingTheServer(t *testing.T) {
	srv, hits := countingServer(t)
	rc := restClientFor(t, &rest.Config{Host: srv.URL, QPS: 0.1, Burst: 1})
	if err := rc.Get().AbsPath("/api").Do(context.Background()).Error(); err != nil {
		t.Fatal(err)
	}
	// The next token is 10 s away, past this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := rc.Get().AbsPath("/api").Do(ctx).Error()
	if err == nil || !strings.Contains(err.Error(), "--kube-api-qps") {
		t.Errorf("error %v, want one naming the client-side limit", err)
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests reached the server, want 1", hits.Load())
	}
}

func TestNoLimitOrAnOwnLimiterIsLeftAsItIs(t *testing.T) {
	own := flowcontrol.NewFakeAlwaysRateLimiter()
	tests := []struct {
		name string
		cfg  rest.Config
		want flowcontrol.RateLimiter
	}{
		{"negative QPS: no limit", rest.Config{QPS: -1}, nil},
		{"a limiter of the caller's", rest.Config{QPS: 5, RateLimiter: own}, own},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := countingServer(t)
			cfg := tt.cfg
			cfg.Host = srv.URL
			rc := restClientFor(t, &cfg)
			if cfg.WrapTransport != nil {
				t.Error("a transport limiter was added")
			}
			if rc.GetRateLimiter() != tt.want {
				t.Errorf("REST client limiter %v, want %v", rc.GetRateLimiter(), tt.want)
			}
		})
	}
}

func TestDefaultQPSIsClientGosWhenUnset(t *testing.T) {
	srv, _ := countingServer(t)
	cfg := &rest.Config{Host: srv.URL}
	rc := restClientFor(t, cfg)
	if rc.GetRateLimiter() != nil || cfg.WrapTransport == nil {
		t.Fatal("an unset QPS must still be limited, in the transport")
	}
	// client-go's default burst (10) goes at once; the 11th request waits
	// for a token at the default 5 per second.
	start := time.Now()
	for range int(rest.DefaultBurst) + 1 {
		if err := rc.Get().AbsPath("/api").Do(context.Background()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Errorf("%d requests took %v: the default limit did not hold", rest.DefaultBurst+1, elapsed)
	}
}

func TestWatchesDoNotWaitForTheLimit(t *testing.T) {
	srv, hits := countingServer(t)
	rc := restClientFor(t, &rest.Config{Host: srv.URL, QPS: 0.1, Burst: 1})
	if err := rc.Get().AbsPath("/api").Do(context.Background()).Error(); err != nil {
		t.Fatal(err)
	}
	// The bucket is empty for 10 s; a watch opens at once, as client-go's
	// Watch opens one without asking its limiter.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := rc.Get().AbsPath("/api").Param("watch", "true").DoRaw(ctx); err != nil {
		t.Fatalf("a watch waited for the limit: %v", err)
	}
	if hits.Load() != 2 {
		t.Errorf("%d requests reached the server, want 2", hits.Load())
	}
}

func TestCancelWhileWaitingIsTheCallersErrorNotTheLimits(t *testing.T) {
	srv, hits := countingServer(t)
	rc := restClientFor(t, &rest.Config{Host: srv.URL, QPS: 0.1, Burst: 1})
	if err := rc.Get().AbsPath("/api").Do(context.Background()).Error(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := rc.Get().AbsPath("/api").Do(ctx).Error()
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "--kube-api-qps") {
		t.Errorf("error %v, want context.Canceled, unwrapped by the limit", err)
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests reached the server, want 1", hits.Load())
	}
}

// The child informers build REST clients of their own on the dynamic
// client's HTTP client (engine.newChildInformer): they draw on its bucket.
func TestAClientOnTheSameHTTPClientSharesTheBucket(t *testing.T) {
	srv, _ := countingServer(t)
	rc := restClientFor(t, &rest.Config{Host: srv.URL, QPS: 0.1, Burst: 1})
	other, err := rest.NewRESTClient(rc.Get().AbsPath("/").URL(), "", rest.ClientContentConfig{
		AcceptContentTypes: "application/json", ContentType: "application/json",
		Negotiator: runtime.NewClientNegotiator(scheme.Codecs.WithoutConversion(), schema.GroupVersion{}),
	}, rc.GetRateLimiter(), rc.Client)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Get().AbsPath("/api").Do(context.Background()).Error(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := other.Get().AbsPath("/api").Do(ctx).Error(); err == nil {
		t.Error("the second client got a token the first had taken")
	}
}
