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
// informer of the queue's owner reaches the API server again (one it
// answers with a refusal counts as reaching it). (The retry the
// backoff had scheduled still comes: one pass more per such key.) A
// server that answers 429 or 5xx is overloaded or failing rather than
// away: those keys keep backing off.
type stalledKeys struct {
	mu        sync.Mutex
	keys      map[string]bool
	away      bool   // an informer could not reach the API server, at the last health change
	recovered uint64 // times every informer reached it again after that
}

// epoch is read before a pass, for failed.
func (s *stalledKeys) epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovered
}

// failed adds key back to queue after its pass, begun at epoch began,
// failed with err. When the pass could not connect to the API server, key
// is noted and backs off; when the informers came back while the pass ran,
// it is not noted (that moment has passed) but runs again at once, its
// backoff reset. Any other failure backs off, and drops a note.
func (s *stalledKeys) failed(key string, began uint64, err error, queue workqueue.TypedRateLimitingInterface[string]) {
	s.mu.Lock()
	back := false
	switch {
	case !stalledBy(err):
		delete(s.keys, key)
	case s.recovered != began:
		back = true
	default:
		if s.keys == nil {
			s.keys = map[string]bool{}
		}
		s.keys[key] = true
	}
	s.mu.Unlock()
	if back {
		// Add, not AddRateLimited: the rate limiter's shared bucket
		// would hold it back behind every other failure of the outage.
		queue.Forget(key)
		queue.Add(key)
		return
	}
	queue.AddRateLimited(key)
}

// drop forgets key: its pass succeeded, or its object is gone.
func (s *stalledKeys) drop(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
}

// stalledBy: err says the pass could not connect to the API server. (A
// pass's own deadline ends only its API calls: its callbacks' failures are
// recorded, not returned, so a deadline here is an API call unanswered.)
func stalledBy(err error) bool {
	return connectionFailed(err) && !errors.Is(err, context.Canceled)
}

// retryWhenHealthy queues the noted keys again unless an informer of
// health still cannot reach the API server. One that the API server
// answers with a refusal (its RBAC gone, its kind removed) is back for
// this: it may fail for good, and must not keep every stalled pass
// waiting out its backoff.
func (s *stalledKeys) retryWhenHealthy(health *watchHealth, queue workqueue.TypedRateLimitingInterface[string]) {
	away := health.anyUnreachable()
	s.mu.Lock()
	back := s.away && !away
	s.away = away
	if !back {
		// Still away, or a change (a refusal, a failure cured) with the
		// API server in reach all along: no recovery.
		s.mu.Unlock()
		return
	}
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
