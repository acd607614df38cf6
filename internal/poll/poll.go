// Package poll waits in tests for what the cluster does eventually.
package poll

import (
	"context"
	"testing"
	"time"
)

// Condition reports whether what a test waits for holds, and if not, what
// it saw instead (for the failure message).
type Condition func(ctx context.Context) (done bool, seen string, err error)

// Eventually polls cond every 200ms until it holds, and fails the test if it
// does not within timeout, with the last state seen. An error from cond is
// taken as "not yet" (the API server may be busy) and reported if it is the
// last thing seen.
func Eventually(t testing.TB, timeout time.Duration, what string, cond Condition) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	var seen string
	for {
		done, last, err := cond(ctx)
		if err != nil {
			last = "error: " + err.Error()
		}
		if done {
			return
		}
		seen = last
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, seen)
			return // for a testing.TB whose Fatalf returns
		case <-ticker.C:
		}
	}
}
