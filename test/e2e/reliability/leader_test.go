package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestStandbyFinishesTheKilledLeadersWork runs two gateways with leader
// election, SIGKILLs the leader while its slow handler calls are in flight
// and the test keeps writing, and checks that the standby takes over and
// finishes everything.
func TestStandbyFinishesTheKilledLeadersWork(t *testing.T) {
	w := newWorld(t, 300*time.Millisecond, 1200*time.Millisecond)
	elect := []string{"--leader-elect", "--leader-election-namespace", w.ns, "--leader-election-name", "opgate"}
	gws := []*gateway{newGateway(t, "a", w.op, elect...), newGateway(t, "b", w.op, elect...)}
	for _, g := range gws {
		g.waitReady(time.Minute) // a standby is ready too
	}
	var leader, standby *gateway
	eventually(t, time.Minute, "one gateway leading", func(ctx context.Context) (bool, string, error) {
		a, b := gws[0].leads(ctx), gws[1].leads(ctx)
		switch {
		case a && !b:
			leader, standby = gws[0], gws[1]
		case b && !a:
			leader, standby = gws[1], gws[0]
		}
		return leader != nil, fmt.Sprintf("a leads %v, b leads %v", a, b), nil
	})

	wait := w.startWorkload(w.workload("l", 10, 30, 0.4), 200*time.Millisecond)
	w.waitCallsInFlight(8)
	killedAt := time.Now()
	leader.kill()
	callsAtKill := len(w.chk.Recorder.Calls())
	eventually(t, time.Minute, "the standby leading", func(ctx context.Context) (bool, string, error) {
		return standby.leads(ctx), "", nil
	})
	tookOver := time.Since(killedAt)
	eventually(t, time.Minute, "a call from the new leader", func(context.Context) (bool, string, error) {
		for _, c := range w.chk.Recorder.Calls()[callsAtKill:] {
			if c.At.After(killedAt.Add(tookOver)) {
				return true, "", nil
			}
		}
		return false, "no call since the takeover", nil
	})
	wait()
	rep, took := w.chk.AssertEventually(t, 2*time.Minute)
	t.Logf("figure: leader SIGKILLed mid-round; standby leads after %s (lease 15s); invariants hold %s after the last write; %d duplicate deliveries",
		tookOver.Round(100*time.Millisecond), took.Round(100*time.Millisecond), rep.Duplicates)
}
