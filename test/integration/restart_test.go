package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

func TestTimerFiresAtItsIntervalAndStopsOnDelete(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	interval := 300 * time.Millisecond
	startGateway(t, operatorFor(t, "timer", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "backup", Events: []spec.Event{spec.EventTimer}, Interval: &spec.Duration{Duration: interval}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return called(h, "backup", 4) })
	at := h.arrivals("backup")
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < interval {
			t.Errorf("timer call %d came %s after the previous one, want ≥ interval %s", i+1, gap, interval)
		}
	}
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "example")
	stopped := len(h.calls("backup"))
	// Wait until a cleanup of a second object proves the gateway kept
	// working for at least several intervals, then count again.
	createWidget(t, ns, "witness", 1)
	eventually(t, 10*time.Second, func() error { return timerCalledFor(h, "witness", 3) })
	for _, r := range h.calls("backup")[stopped:] {
		if r.Object.GetName() == "example" {
			t.Fatalf("timer fired for the deleted object")
		}
	}
}

func timerCalledFor(h *handler, name string, n int) error {
	got := 0
	for _, r := range h.calls("backup") {
		if r.Object.GetName() == name {
			got++
		}
	}
	if got < n {
		return fmt.Errorf("timer fired %d times for %s, want %d", got, name, n)
	}
	return nil
}

func TestResumeAfterGatewayRestart(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	op := operatorFor(t, "resumer", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "resume", Events: []spec.Event{spec.EventResume}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
		}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "resumer") })
	stop()
	if n := len(h.calls("resume")); n != 0 {
		t.Fatalf("resume called %d times before any restart", n)
	}
	// Changed while the gateway was down: after the restart, resume and an
	// update with the diff against what was handled before.
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(4), "spec", "size")
	})
	startGateway(t, op)
	eventually(t, 10*time.Second, func() error { return called(h, "resume", 1) })
	eventually(t, 10*time.Second, func() error { return called(h, "resize", 1) })
	if n := len(h.calls("create")); n != 1 {
		t.Errorf("create called %d times, want once: a restart resumes, it does not create again", n)
	}
	r := h.calls("resize")[0]
	if len(r.Diff) != 1 || string(r.Diff[0].Old) != "1" || string(r.Diff[0].New) != "4" {
		t.Errorf("diff after restart = %+v, want spec.size 1 → 4 (old essence kept in the annotation)", r.Diff)
	}
}

func TestBackoffContinuesAcrossGatewayRestart(t *testing.T) {
	ns := newNamespace(t)
	var healthy atomic.Bool
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if healthy.Load() {
			return 200, nil
		}
		return 503, nil
	})
	op := operatorFor(t, "backoff", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(100 * time.Millisecond)
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return called(h, "create", 4) })
	stop()
	before := h.calls("create")
	last := before[len(before)-1]
	healthy.Store(true)
	startGateway(t, op)
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "backoff") })
	after := h.calls("create")[len(before):]
	if len(after) == 0 {
		t.Fatal("create not called after the restart")
	}
	if after[0].Attempt <= last.Attempt {
		t.Errorf("first attempt after restart = %d, want > %d: the backoff must continue, not start over", after[0].Attempt, last.Attempt)
	}
	if after[0].UID != last.UID {
		t.Errorf("delivery uid changed across the restart: %q then %q", last.UID, after[0].UID)
	}
}

// stateHandled waits until the state annotation records a handled essence
// and no round in progress.
func stateHandled(t *testing.T, ns, name, operator string) error {
	w, err := getWidget(t, ns, name)
	if err != nil {
		return err
	}
	st := w.GetAnnotations()["opgate.dev/state."+operator]
	if st == "" || !strings.Contains(st, `"h":"`) || strings.Contains(st, `"r":`) {
		return fmt.Errorf("state %q: not handled yet", st)
	}
	return nil
}

// A gateway restarted while an update callback is retrying calls resume for
// the handled object, then takes the update up again.
func TestResumeIsCalledAfterARestartDuringAnOpenUpdateRound(t *testing.T) {
	ns := newNamespace(t)
	var healthy atomic.Bool
	healthy.Store(true)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "resize" && !healthy.Load() {
			return 503, nil
		}
		return 200, nil
	})
	op := operatorFor(t, "resumer", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(100 * time.Millisecond)
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "resume", Events: []spec.Event{spec.EventResume}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
		}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "resumer") })
	healthy.Store(false)
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(4), "spec", "size")
	})
	eventually(t, 10*time.Second, func() error { return called(h, "resize", 2) })
	stop()
	healthy.Store(true)
	resizes := len(h.calls("resize"))
	startGateway(t, op)
	eventually(t, 20*time.Second, func() error {
		if n := len(h.calls("resume")); n != 1 {
			return fmt.Errorf("resume called %d times after the restart, want 1", n)
		}
		if n := len(h.calls("resize")); n <= resizes {
			return fmt.Errorf("the update not taken up again after resume (%d resize calls)", n)
		}
		return stateHandled(t, ns, "example", "resumer")
	})
}
