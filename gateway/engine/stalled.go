package engine

import (
	"sync"

	"k8s.io/client-go/util/workqueue"
)

// A pass that fails waits in the work queue's per-key backoff (5 ms
// doubling, up to 1000 s): after half a minute of an API server outage, a
// pass failing all along would next run about as long after the API
// server was back. The keys whose pass failed for want of the API server
// are noted, and run again at once, their backoff reset, when every
// informer of the queue's owner lists and watches again.
type stalledKeys struct {
	mu   sync.Mutex
	keys map[string]bool
}

// note records that key's pass failed to reach the API server.
func (s *stalledKeys) note(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	s.keys[key] = true
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
