package engine

import (
	"fmt"
	"log/slog"
	"net/url"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"
)

func hourQueue() workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Hour, time.Hour))
}

func TestPassesStalledByAnOutageRunAgainWhenEveryInformerIsBack(t *testing.T) {
	refused := refusedByClientGo(t)
	unanswered := fmt.Errorf("write state: %w", &url.Error{Op: "Patch", URL: "https://api/x", Err: dialTimeout(t)})
	unavailable := apierrors.NewServiceUnavailable("etcd")
	both := []string{"widgets", "configmaps"}
	tests := []struct {
		name       string
		err        error    // the pass's failure
		later      error    // its next failure, if any
		recover    []string // informers whose list succeeds again, after the failure
		succeeded  bool     // the pass ran again and succeeded before the recovery
		refuse     []string // informers whose list is refused (403) after the outage
		wantQueued bool
	}{
		{"every informer back", refused, nil, both, false, nil, true},
		{"one still failing", refused, nil, []string{"widgets"}, false, nil, false},
		{"no answer in time from a host that drops packets", unanswered, nil, both, false, nil, true},
		{"a 503 is an answer, not an outage: it keeps backing off", unavailable, nil, both, false, nil, false},
		{"a pass failing with a 503 after the outage keeps backing off", refused, unavailable, both, false, nil, false},
		{"a pass that succeeded since is not run again", refused, nil, both, true, nil, false},
		// Its RBAC lost, an informer fails for good; the API server is back
		// all the same.
		{"every informer answers again, one with a refusal", refused, nil, []string{"widgets"}, false, []string{"configmaps"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Controller{changed: make(chan struct{}, 1), queue: hourQueue()}
			defer c.queue.ShutDown()
			c.health.onChange = c.onHealthChange
			c.health.observeCall("widgets", refused)
			c.health.observeCall("configmaps", refused)
			// The pass fails while the API server is away: its next try
			// is an hour off.
			c.stalled.failed("ns/a", c.stalled.epoch(), tt.err, c.queue)
			if tt.later != nil {
				c.stalled.failed("ns/a", c.stalled.epoch(), tt.later, c.queue)
			}
			if tt.succeeded {
				c.stalled.drop("ns/a")
			}
			for _, what := range tt.refuse {
				c.health.observeCall(what, apierrors.NewForbidden(deployments, "", fmt.Errorf("RBAC")))
			}
			for _, what := range tt.recover {
				c.health.observeCall(what, nil)
			}
			if got := c.queue.Len() == 1; got != tt.wantQueued {
				t.Fatalf("queued now: %v (length %d), want %v", got, c.queue.Len(), tt.wantQueued)
			}
			if tt.wantQueued && c.queue.NumRequeues("ns/a") != 0 {
				t.Errorf("backoff of the stalled pass kept %d failures, want it reset", c.queue.NumRequeues("ns/a"))
			}
		})
	}
}

// A pass that began before the informers came back and failed after has
// missed the moment: it runs again at once rather than waiting for the
// next outage to end, or behind the other failures of the outage in the
// controller rate limiter's shared bucket (10 per second).
func TestPassFailingAsTheInformersComeBackRunsAgainAtOnce(t *testing.T) {
	refused := refusedByClientGo(t)
	c := &Controller{changed: make(chan struct{}, 1),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	defer c.queue.ShutDown()
	c.health.onChange = c.onHealthChange
	c.health.observeCall("widgets", refused)
	for i := range 300 {
		c.queue.AddRateLimited(fmt.Sprintf("ns/other-%d", i)) // the outage's other failures
	}
	for range 3 {
		c.queue.AddRateLimited("ns/a") // earlier failures
	}
	began := c.stalled.epoch()
	c.health.observeCall("widgets", nil)
	c.stalled.failed("ns/a", began, refused, c.queue)
	if n := c.queue.NumRequeues("ns/a"); n != 0 {
		t.Errorf("backoff keeps %d failures, want it reset so the retry comes at once", n)
	}
	if c.queue.Len() == 0 {
		t.Errorf("not queued now: it waits behind the outage's other failures")
	}
	if len(c.stalled.keys) != 0 {
		t.Errorf("noted %v, want nothing left for a recovery that has passed", c.stalled.keys)
	}
}

func TestRegistrySyncsStalledByAnOutageRunAgainWhenItsWatchIsBack(t *testing.T) {
	r := &Registry{deps: Deps{Logger: slog.New(slog.DiscardHandler)}, queue: hourQueue()}
	defer r.queue.ShutDown()
	r.health.onChange = r.onHealthChange
	refused := refusedByClientGo(t)
	r.health.observeCall("webhookoperators", refused)
	r.stalled.failed("memcached", r.stalled.epoch(), refused, r.queue)
	r.health.observeCall("webhookoperators", nil)
	if r.queue.Len() != 1 {
		t.Errorf("queued now: %d, want the stalled operator", r.queue.Len())
	}
}

// TestARefusalIsNoRecovery: a health change while the API server was in
// reach all along (an informer refused, then allowed) requeues nothing and
// does not end the moment a pass began in.
func TestARefusalIsNoRecovery(t *testing.T) {
	c := &Controller{changed: make(chan struct{}, 1), queue: hourQueue()}
	defer c.queue.ShutDown()
	c.health.onChange = c.onHealthChange
	began := c.stalled.epoch()
	c.health.observeCall("widgets", apierrors.NewForbidden(deployments, "", fmt.Errorf("RBAC")))
	c.health.observeCall("widgets", nil)
	if c.stalled.epoch() != began {
		t.Errorf("epoch %d after a refusal and its cure, want %d: the API server was never away", c.stalled.epoch(), began)
	}
}
