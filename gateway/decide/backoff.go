package decide

import (
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/opgate/opgate/gateway/spec"
)

// Retry defaults, used where neither callback nor operator says otherwise.
const (
	DefaultInitialDelay = time.Second
	DefaultMultiplier   = 2.0
	DefaultMaxDelay     = 5 * time.Minute
	DefaultJitter       = 0.2
)

// RetryDelay is the backoff before attempt attempts+1, computed afresh from
// the persisted attempt count so a restarted gateway continues the same
// sequence instead of starting over.
func RetryDelay(r spec.RetrySpec, attempts int) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = r.InitialDelay.Or(DefaultInitialDelay)
	b.MaxInterval = r.MaxDelay.Or(DefaultMaxDelay)
	b.Multiplier = DefaultMultiplier
	if r.Multiplier != nil {
		b.Multiplier = *r.Multiplier
	}
	b.RandomizationFactor = DefaultJitter
	if r.Jitter != nil {
		b.RandomizationFactor = *r.Jitter
	}
	b.MaxElapsedTime = 0 // attempts are bounded by maxAttempts, not time
	b.Reset()
	d := b.InitialInterval
	for i := 0; i < attempts; i++ {
		d = b.NextBackOff()
	}
	return d
}
