package decide

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/opgate/opgate/gateway/spec"
)

// Retry defaults, used where neither callback nor operator says otherwise.
const (
	DefaultInitialDelay = time.Second
	DefaultMultiplier   = 2.0
	DefaultMaxDelay     = 5 * time.Minute
	DefaultJitter       = 0.2
)

// CapDelay caps a delay a handler asked for (requeueAfter, retryAfter,
// Retry-After) at maxDelay, so that no answer parks an object (or keeps it
// Terminating) longer than the operator allows.
func CapDelay(r spec.RetrySpec, d time.Duration) time.Duration {
	return min(d, r.MaxDelay.Or(DefaultMaxDelay))
}

// RetryDelay is the backoff before attempt attempts+1: initialDelay ×
// multiplier^(attempts-1), capped at maxDelay, then spread uniformly by
// ±jitter. It is computed afresh from the persisted attempt count, so a
// restarted gateway continues the same sequence instead of starting over.
//
// The sequence and the jitter are cenkalti/backoff's ExponentialBackOff's,
// but computed here for attempt N directly: that type is an iterator with
// no way to start at attempt N (it had to be stepped N times), and it draws
// from the global random source, which a test cannot seed.
func RetryDelay(r spec.RetrySpec, attempts int) time.Duration {
	return retryDelay(r, attempts, rand.Float64)
}

// retryDelay is RetryDelay with the source of jitter, a number in [0, 1).
func retryDelay(r spec.RetrySpec, attempts int, random func() float64) time.Duration {
	initial := r.InitialDelay.Or(DefaultInitialDelay)
	if attempts < 1 {
		return initial
	}
	maxDelay := r.MaxDelay.Or(DefaultMaxDelay)
	multiplier, jitter := DefaultMultiplier, DefaultJitter
	if r.Multiplier != nil {
		multiplier = *r.Multiplier
	}
	if r.Jitter != nil {
		jitter = *r.Jitter
	}
	// In float64, a large attempt count gives +Inf, which the cap absorbs.
	d := maxDelay
	if grown := float64(initial) * math.Pow(multiplier, float64(attempts-1)); attempts == 1 || grown < float64(maxDelay) {
		d = time.Duration(grown)
	}
	if jitter == 0 {
		return d
	}
	// cenkalti/backoff's formula: uniform over [d-delta, d+delta] in whole
	// nanoseconds.
	delta := jitter * float64(d)
	return time.Duration(float64(d) - delta + random()*(2*delta+1))
}
