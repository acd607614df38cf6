package engine

import (
	"context"
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
	outOfTime := fmt.Errorf("write state: %w", &url.Error{Op: "Patch", URL: "https://api/x", Err: context.DeadlineExceeded})
	tests := []struct {
		name       string
		err        error    // the pass's failure
		recover    []string // informers whose list succeeds again, after the failure
		succeeded  bool     // the pass ran again and succeeded before the recovery
		wantQueued bool
	}{
		{"every informer back", refused, []string{"widgets", "configmaps"}, false, true},
		{"one still failing", refused, []string{"widgets"}, false, false},
		{"a 503 is an answer, not an outage: it keeps backing off", apierrors.NewServiceUnavailable("etcd"), []string{"widgets", "configmaps"}, false, false},
		{"a pass out of its own time keeps backing off", outOfTime, []string{"widgets", "configmaps"}, false, false},
		{"a pass that succeeded since is not run again", refused, []string{"widgets", "configmaps"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Controller{changed: make(chan struct{}, 1), queue: hourQueue()}
			defer c.queue.ShutDown()
			c.health.onChange = c.onHealthChange
			c.health.observe("widgets", refused)
			c.health.observe("configmaps", refused)
			// The pass fails while the API server is away: its next try
			// is an hour off.
			c.stalled.failed("ns/a", c.stalled.epoch(), tt.err, c.queue)
			c.queue.AddRateLimited("ns/a")
			if tt.succeeded {
				c.stalled.drop("ns/a")
			}
			for _, what := range tt.recover {
				c.health.observe(what, nil)
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
// next outage to end.
func TestPassFailingAsTheInformersComeBackRunsAgainAtOnce(t *testing.T) {
	refused := refusedByClientGo(t)
	c := &Controller{changed: make(chan struct{}, 1), queue: hourQueue()}
	defer c.queue.ShutDown()
	c.health.onChange = c.onHealthChange
	c.health.observe("widgets", refused)
	for range 3 {
		c.queue.AddRateLimited("ns/a") // earlier failures
	}
	began := c.stalled.epoch()
	c.health.observe("widgets", nil)
	c.stalled.failed("ns/a", began, refused, c.queue)
	if n := c.queue.NumRequeues("ns/a"); n != 0 {
		t.Errorf("backoff keeps %d failures, want it reset so the retry comes at once", n)
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
	r.health.observe("webhookoperators", refused)
	r.stalled.failed("memcached", r.stalled.epoch(), refused, r.queue)
	r.queue.AddRateLimited("memcached")
	r.health.observe("webhookoperators", nil)
	if r.queue.Len() != 1 {
		t.Errorf("queued now: %d, want the stalled operator", r.queue.Len())
	}
}
