package integration

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// reconciledFalseNaming checks that a widget's Reconciled condition is
// False and its message names callback.
func reconciledFalseNaming(t *testing.T, ns, name, callback string) func() error {
	return func() error {
		w, err := getWidget(t, ns, name)
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(w.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Reconciled" && m["status"] == "False" && strings.Contains(fmt.Sprint(m["message"]), callback) {
				return nil
			}
		}
		return fmt.Errorf("no Reconciled=False naming %s in %v", callback, conds)
	}
}

// A timer whose handler is down past maxAttempts gives up that tick only
// (Kopf's timers do the same): the next comes at its interval, not at
// once (no hot loop) and not never, the object reads failing meanwhile,
// and once the handler is back the timer goes on and the object reads
// reconciled.
func TestTimerTicksAgainAfterAFailedTickAndRecoversWithItsHandler(t *testing.T) {
	const interval = 300 * time.Millisecond
	ns := newNamespace(t)
	var down atomic.Bool
	down.Store(true)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.Event(spec.EventTimer) && down.Load() {
			return 503, map[string]any{"error": map[string]any{"message": "restarting"}}
		}
		return 200, nil
	})
	two := 2
	startGateway(t, operatorFor(t, "tickout", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Callbacks = []spec.Callback{{
			ID: "tick", Events: []spec.Event{spec.EventTimer},
			Interval: &spec.Duration{Duration: interval},
			Retry:    &spec.RetrySpec{InitialDelay: &spec.Duration{Duration: 100 * time.Millisecond}, MaxAttempts: &two},
		}}
	}))
	createWidget(t, ns, "example", 1)
	// Two ticks of two failed attempts each: the timer went on after
	// giving up the first.
	eventually(t, 20*time.Second, func() error { return called(h, "tick", 4) })
	at := h.arrivals("tick")
	if gap := at[2].Sub(at[1]); gap < interval {
		t.Errorf("the tick after one given up came %s after its last attempt, want at least the interval %s", gap, interval)
	}
	eventually(t, 20*time.Second, reconciledFalseNaming(t, ns, "example", "tick"))

	down.Store(false)
	failed := len(h.calls("tick"))
	eventually(t, 20*time.Second, reconciled(t, ns, "example", "True", ""))
	eventually(t, 20*time.Second, func() error { return called(h, "tick", failed+3) })
}
