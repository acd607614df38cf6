package engine

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// A timer's tick that fails for good (maxAttempts spent, or a permanent
// failure) gives up that tick only: the record says it failed (the
// object reads failing until a tick succeeds), a Warning says so, and the
// next tick is set an interval on, as a success would set it; before, the
// timer never fired again until the spec changed.
func TestATimersFinalFailureSchedulesItsNextTick(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	one := 1
	tick := spec.Callback{ID: "tick", Events: []spec.Event{spec.EventTimer}, Interval: &spec.Duration{Duration: time.Minute}}
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"maxAttempts spent", failure.Temporaryf("HandlerUnavailable", "503")},
		{"a permanent failure", failure.Permanentf("HandlerError", "bucket gone")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := retryController(t, now, tick, &spec.RetrySpec{MaxAttempts: &one})
			p := widgetPass(now, &state.State{Handled: "e1"}, "e1")
			w := decide.Work{Callback: tick, Event: spec.EventTimer}
			c.recordFailure(p, w, attemptOf(p, w), tt.err, c.log)
			if pr := p.st.ProgressFor("tick", "timer"); pr == nil || !pr.Failed {
				t.Errorf("record = %+v, want the tick's failure kept", pr)
			}
			if got, want := p.mem.TimerNext["tick"], now.Add(time.Minute); !got.Equal(want) {
				t.Errorf("next tick at %v, want %v (an interval on)", got, want)
			}
			select {
			case e := <-rec.Events:
				if !strings.Contains(e, "Warning") || !strings.Contains(e, "fires again in 1m0s") {
					t.Errorf("event %q, want a Warning saying when the timer fires again", e)
				}
			default:
				t.Error("no Warning recorded")
			}
		})
	}
}

// A reconcile request calls a timer whose tick failed for good at once, as
// it calls the other events owed, rather than an interval later.
func TestARequestCallsAFailedTimerNow(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tick := spec.Callback{ID: "tick", Events: []spec.Event{spec.EventTimer}, Interval: &spec.Duration{Duration: time.Hour}}
	c := &Controller{op: &spec.WebhookOperator{Spec: spec.OperatorSpec{Callbacks: []spec.Callback{tick}}}}
	st := &state.State{Handled: "d"}
	pr := st.ProgressOf("tick", "timer")
	pr.Attempts, pr.Failed, pr.Digest = 2, true, "d"
	obj := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"namespace": "ns", "name": "w"}}}
	p := &pass{obj: obj, st: st, now: now, mem: &objectMemory{}}
	p.mem.TimerNext = map[string]time.Time{"tick": now.Add(time.Hour)}
	c.honourRequest(p, "2026-11-25T10:00:00Z")
	if pr.Failed {
		t.Errorf("record = %+v, want one more attempt", pr)
	}
	if got := p.mem.TimerNext["tick"]; !got.Equal(now) {
		t.Errorf("next tick at %v, want now %v", got, now)
	}
}
