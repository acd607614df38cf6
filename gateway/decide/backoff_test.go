package decide

import (
	"testing"
	"time"

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
	}
	for _, tt := range tests {
		if got := RetryDelay(r, tt.attempts); got != tt.want {
			t.Errorf("RetryDelay(attempts=%d) = %v, want %v", tt.attempts, got, tt.want)
		}
	}
}

func TestRetryDelayJitterStaysInBounds(t *testing.T) {
	r := spec.RetrySpec{InitialDelay: dur(time.Second)}
	for range 100 {
		got := RetryDelay(r, 3) // 4s ± 20%
		if got < 3200*time.Millisecond || got > 4800*time.Millisecond {
			t.Fatalf("RetryDelay = %v, want 4s ± 20%%", got)
		}
	}
}
