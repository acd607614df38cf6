package engine

import (
	"context"
	"errors"
	"sync"

	"k8s.io/client-go/util/workqueue"
)

// A pass that fails waits in the work queue's per-key backoff (5 ms
// doubling, up to 1000 s): after half a minute of an API server outage, a
// pass failing all along would next run about as long after the API
// server was back. The keys whose pass could not connect to the API
// server are noted and run again at once, their backoff reset, when every
// informer of the queue's owner lists and watches again. (The retry the
// backoff had scheduled still comes: one pass more per such key.) A
// server that answers 429 or 5xx is overloaded or failing rather than
// away: those keys keep backing off.
type stalledKeys struct {
	mu        sync.Mutex
	keys      map[string]bool
	recovered uint64 // times every informer came back after a failure
}

// epoch is read before a pass, for failed.
func (s *stalledKeys) epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovered
}

// failed handles the failure err of key's pass, begun at epoch began,
// before the caller adds key back with backoff. When the pass could not
// connect to the API server, key is noted; when the informers came back
// while the pass ran, it is not noted (that moment has passed) but its
// backoff is reset, so it runs again at once.
func (s *stalledKeys) failed(key string, began uint64, err error, queue workqueue.TypedRateLimitingInterface[string]) {
	if !stalledBy(err) {
		return
	}
	s.mu.Lock()
	back := s.recovered != began
	if !back {
		if s.keys == nil {
			s.keys = map[string]bool{}
		}
		s.keys[key] = true
	}
	s.mu.Unlock()
	if back {
		queue.Forget(key)
	}
}

// drop forgets key: its pass succeeded, or its object is gone.
func (s *stalledKeys) drop(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
}

// stalledBy: err says the pass could not connect to the API server. A
// pass that ran out of its own time is not stalled by the API server.
func stalledBy(err error) bool {
	return connectionFailed(err) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// retryWhenHealthy queues the noted keys again unless an informer of
// health still fails.
func (s *stalledKeys) retryWhenHealthy(health *watchHealth, queue workqueue.TypedRateLimitingInterface[string]) {
	if _, _, failing := health.failing(); failing {
		return
	}
	s.mu.Lock()
	keys := s.keys
	s.keys = nil
	s.recovered++
	s.mu.Unlock()
	for key := range keys {
		queue.Forget(key)
		queue.Add(key)
	}
}

// onHealthChange is the registry's watchHealth hook.
func (r *Registry) onHealthChange() {
	r.logWatchHealth()
	r.stalled.retryWhenHealthy(&r.health, r.queue)
}

// onHealthChange is the controller's watchHealth hook.
func (c *Controller) onHealthChange() {
	c.notifyChanged()
	c.stalled.retryWhenHealthy(&c.health, c.queue)
}
