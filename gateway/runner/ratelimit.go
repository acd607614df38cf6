package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// The dynamic client carries nearly all of the gateway's requests. When a
// REST client has a rate limiter, client-go builds each request's URL
// template for its throttling metric (which the gateway does not export)
// whether or not the request waits: 2–4 % of the gateway's CPU under load
// (docs/performance.md). limitInTransport keeps the same limit, a token
// bucket of the config's QPS and burst per client, in the client's
// transport instead. What differs from client-go's limiter:
//   - a request refused by the limiter (a context that ends first) counts
//     in rest_client_requests_total as code "<error>";
//   - the wait counts against rest.Config.Timeout, which the gateway does
//     not set;
//   - requests that open a watch do not wait, as client-go's Watch does
//     not on its first try, whether they come through Watch or Stream.

// slowWait is a wait for the limit worth a warning: client-go logs one
// above a second too.
const slowWait = time.Second

// limitInTransport moves cfg's client-side rate limit into its transport.
// A config with a limiter of its own, or a negative QPS (no limit), is
// left as it is.
func limitInTransport(cfg *rest.Config, log *slog.Logger) {
	if cfg.RateLimiter != nil {
		return
	}
	qps, burst := cfg.QPS, cfg.Burst
	if qps == 0 {
		qps = rest.DefaultQPS
	}
	if burst == 0 {
		burst = rest.DefaultBurst
	}
	if qps < 0 {
		return
	}
	limiter := flowcontrol.NewTokenBucketRateLimiter(qps, burst)
	cfg.QPS = -1
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &limitedTransport{next: rt, limiter: limiter, log: log, qps: qps, base: time.Now()}
	})
}

// limitedTransport waits for the limiter before every request but those
// opening a watch, as client-go's REST client does before each try.
type limitedTransport struct {
	next    http.RoundTripper
	limiter flowcontrol.RateLimiter
	log     *slog.Logger
	qps     float32
	base    time.Time    // warned counts from here, on the monotonic clock
	warned  atomic.Int64 // time.Since(base) at the last warning, plus one
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true" {
		// Long-lived and few; throttling them only delays events. (Only a
		// GET opens one: the writes skip parsing the query.)
		return t.next.RoundTrip(req)
	}
	start := time.Now()
	if err := t.limiter.Wait(req.Context()); err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // a RoundTripper closes the body, even on error
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err // the caller's, not the limit's: left as client-go leaves it
		}
		// The limiter saw the context would end before a token came.
		t.warn(req, time.Since(start), err)
		return nil, fmt.Errorf("client-side rate limit (--kube-api-qps %g): %w", t.qps, err)
	}
	if waited := time.Since(start); waited > slowWait {
		t.warn(req, waited, nil)
	}
	return t.next.RoundTrip(req)
}

// warn logs a long wait or a refusal, at most once a minute: a limit that
// binds binds for every request.
func (t *limitedTransport) warn(req *http.Request, waited time.Duration, err error) {
	now := int64(time.Since(t.base)) + 1
	last := t.warned.Load()
	if last != 0 && now-last < int64(time.Minute) || !t.warned.CompareAndSwap(last, now) {
		return
	}
	args := []any{"waited", waited.Round(time.Millisecond), "qps", t.qps, "method", req.Method, "path", req.URL.Path}
	if err != nil {
		args = append(args, "error", err)
	}
	t.log.Warn("a request to the API server waited for the client-side rate limit; raise --kube-api-qps and --kube-api-burst if the API server has room", args...)
}

func (t *limitedTransport) WrappedRoundTripper() http.RoundTripper { return t.next }
