package engine

import (
	"context"
	"time"
)

// recordTimeout bounds the writes that record what a pass did (the state
// annotation, a released finalizer). They run on a fresh context, so they
// happen also when the pass ran out of time or the gateway is shutting down:
// otherwise calls that succeeded would be made again, as new deliveries.
const recordTimeout = 15 * time.Second

// passBudget is the time one pass may spend working: writing to the API
// server, calling handlers and applying their answers. Waiting for a
// maxInFlight slot is queueing, not work, and does not count, so a pass
// queued behind other objects' calls still has its whole budget for its own
// (docs/operations.md).
type passBudget struct {
	left time.Duration
}

// spend runs fn under a context whose deadline is what is left of the
// budget, and takes the time fn took from it.
func (b *passBudget) spend(ctx context.Context, fn func(context.Context) error) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, max(b.left, 0))
	defer cancel()
	defer func() { b.left -= time.Since(start) }()
	return fn(ctx)
}

// exhausted reports whether the budget is spent: the pass starts no more
// work, which stays due for the next pass.
func (b *passBudget) exhausted() bool { return b.left <= 0 }

// recordContext is the context of the writes that record a pass's outcome:
// not canceled with ctx, bounded by recordTimeout.
func recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
}

// waitForSlot waits for one of the operator's maxInFlight call slots under
// ctx, outside any pass budget. release gives the slot back.
func (c *Controller) waitForSlot(ctx context.Context) (release func(), err error) {
	select {
	case c.inflight <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.Metrics.InFlight.WithLabelValues(c.op.Name).Inc()
	return func() {
		<-c.inflight
		c.Metrics.InFlight.WithLabelValues(c.op.Name).Dec()
	}, nil
}
