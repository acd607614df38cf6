package engine

import (
	"log/slog"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
)

func TestPassesStalledByAnOutageRunAgainWhenEveryInformerIsBack(t *testing.T) {
	refused := refusedByClientGo(t)
	tests := []struct {
		name    string
		recover []string // informers whose list succeeds again
		wantRun bool
	}{
		{"every informer back", []string{"widgets", "configmaps"}, true},
		{"one still failing", []string{"widgets"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Controller{changed: make(chan struct{}, 1),
				queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Hour, time.Hour))}
			defer c.queue.ShutDown()
			c.health.onChange = c.onHealthChange
			c.health.observe("widgets", refused)
			c.health.observe("configmaps", refused)
			// The pass fails while the API server is away: its next try
			// is an hour off.
			c.stalled.note("ns/a")
			c.queue.AddRateLimited("ns/a")
			for _, what := range tt.recover {
				c.health.observe(what, nil)
			}
			if got := c.queue.Len() == 1; got != tt.wantRun {
				t.Fatalf("queued now: %v (length %d), want %v", got, c.queue.Len(), tt.wantRun)
			}
			if tt.wantRun && c.queue.NumRequeues("ns/a") != 0 {
				t.Errorf("backoff of the stalled pass kept %d failures, want it reset", c.queue.NumRequeues("ns/a"))
			}
		})
	}
}

func TestRegistrySyncsStalledByAnOutageRunAgainWhenItsWatchIsBack(t *testing.T) {
	r := &Registry{deps: Deps{Logger: slog.New(slog.DiscardHandler)},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Hour, time.Hour))}
	defer r.queue.ShutDown()
	r.health.onChange = r.onHealthChange
	r.health.observe("webhookoperators", refusedByClientGo(t))
	r.stalled.note("memcached")
	r.queue.AddRateLimited("memcached")
	r.health.observe("webhookoperators", nil)
	if r.queue.Len() != 1 {
		t.Errorf("queued now: %d, want the stalled operator", r.queue.Len())
	}
}
