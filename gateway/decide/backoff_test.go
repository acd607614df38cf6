package decide

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/opgate/opgate/gateway/spec"
)

func TestRetryDelayGrowsExponentiallyUpToMaxDelay(t *testing.T) {
	zero, two := 0.0, 2.0
	r := spec.RetrySpec{InitialDelay: dur(time.Second), Multiplier: &two, MaxDelay: dur(10 * time.Second), Jitter: &zero}
	tests := []struct {
		attempts int
		want     time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{5, 10 * time.Second},
		{9, 10 * time.Second},
		{1 << 30, 10 * time.Second}, // no overflow, and no billion steps
	}
	for _, tt := range tests {
		if got := RetryDelay(r, tt.attempts); got != tt.want {
			t.Errorf("RetryDelay(attempts=%d) = %v, want %v", tt.attempts, got, tt.want)
		}
	}
}

// steppedDelay is how the delay was computed before: cenkalti/backoff's
// ExponentialBackOff stepped attempts times.
func steppedDelay(initial, maxDelay time.Duration, multiplier float64, attempts int) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.Multiplier = initial, maxDelay, multiplier
	b.RandomizationFactor, b.MaxElapsedTime = 0, 0
	b.Reset()
	d := b.InitialInterval
	for range attempts {
		d = b.NextBackOff()
	}
	return d
}

func TestRetryDelayForAttemptNIsTheSteppedBackoffs(t *testing.T) {
	zero := 0.0
	tests := []struct {
		name       string
		initial    time.Duration
		maxDelay   time.Duration
		multiplier float64
	}{
		{"the defaults", DefaultInitialDelay, DefaultMaxDelay, DefaultMultiplier},
		{"a multiplier of 1 never grows", 3 * time.Second, time.Minute, 1},
		{"a fractional multiplier", time.Second, time.Hour, 1.5},
		{"an odd initial delay", 1234567 * time.Nanosecond, 7 * time.Minute, 3},
		{"initial equal to max", time.Minute, time.Minute, 2},
		{"a large multiplier", 10 * time.Millisecond, 24 * time.Hour, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.multiplier
			r := spec.RetrySpec{InitialDelay: dur(tt.initial), MaxDelay: dur(tt.maxDelay), Multiplier: &m, Jitter: &zero}
			for attempts := 0; attempts <= 40; attempts++ {
				got, want := RetryDelay(r, attempts), steppedDelay(tt.initial, tt.maxDelay, m, attempts)
				// Stepping truncated to whole nanoseconds at every step, and
				// a fractional multiplier grows those losses: allow one
				// nanosecond per second, and one per step.
				if diff := got - want; diff.Abs() > want/time.Second+time.Duration(attempts) {
					t.Errorf("RetryDelay(attempts=%d) = %v, the stepped backoff gives %v", attempts, got, want)
				}
			}
		})
	}
}

func TestRetryDelayJitterStaysInBounds(t *testing.T) {
	r := spec.RetrySpec{InitialDelay: dur(time.Second)}
	random := rand.New(rand.NewPCG(1, 2)).Float64 // a fixed seed: the same delays on every run
	lo, hi := 5*time.Second, 0*time.Second
	for range 1000 {
		got := retryDelay(r, 3, random) // 4s ± 20%
		if got < 3200*time.Millisecond || got > 4800*time.Millisecond {
			t.Fatalf("retryDelay = %v, want 4s ± 20%%", got)
		}
		lo, hi = min(lo, got), max(hi, got)
	}
	if lo > 3300*time.Millisecond || hi < 4700*time.Millisecond {
		t.Errorf("1000 delays spread over [%v, %v], want nearly all of [3.2s, 4.8s]", lo, hi)
	}
}

func TestRetryDelayJitterEnds(t *testing.T) {
	half := 0.5
	r := spec.RetrySpec{InitialDelay: dur(time.Second), Jitter: &half}
	for _, tt := range []struct {
		random float64
		want   time.Duration
	}{
		{0, 1 * time.Second}, // 2s - 50%
		{0.5, 2 * time.Second},
		{0.75, 2500 * time.Millisecond},
	} {
		if got := retryDelay(r, 2, func() float64 { return tt.random }); got != tt.want {
			t.Errorf("retryDelay with random %v = %v, want %v", tt.random, got, tt.want)
		}
	}
}
