package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestGatewayKilledMidCallbacksLosesNothing SIGKILLs the gateway three
// times while slow handlers (0.3–1.5 s a call) have calls in flight and the
// test keeps writing, and restarts it each time.
func TestGatewayKilledMidCallbacksLosesNothing(t *testing.T) {
	w := newWorld(t, 300*time.Millisecond, 1500*time.Millisecond)
	gw := newGateway(t, "gateway", w.op)
	gw.waitReady(time.Minute)

	plan := w.workload("p", 12, 30, 0.4)
	wait := w.startWorkload(plan, 200*time.Millisecond)
	var downtimes []time.Duration
	for range 3 {
		w.waitCallsInFlight(6)
		killed := time.Now()
		gw.kill()
		gw.start()
		gw.waitReady(time.Minute)
		downtimes = append(downtimes, time.Since(killed))
	}
	wait()
	rep, took := w.chk.AssertEventually(t, 2*time.Minute)
	t.Logf("figure: gateway SIGKILLed 3 times; back ready after %v; invariants hold %s after the last write; %d duplicate deliveries",
		roundAll(downtimes), took.Round(100*time.Millisecond), rep.Duplicates)
}

// waitCallsInFlight waits until the handler has answered n more calls
// and is in the middle of another.
func (w *world) waitCallsInFlight(n int) {
	w.t.Helper()
	start := len(w.chk.Recorder.Calls())
	eventually(w.t, time.Minute, "a call in flight", func(context.Context) (bool, string, error) {
		got, now := len(w.chk.Recorder.Calls())-start, w.inFlight.Load()
		return got >= n && now > 0, fmt.Sprintf("answered %d since, %d in flight", got, now), nil
	})
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Millisecond)
	}
	return out
}
