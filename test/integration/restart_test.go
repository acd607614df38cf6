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
	"github.com/opgate/opgate/gateway/decide"
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

// A permanent failure stops calls of that callback for that event until
// the essence changes (docs/contract.md). A resume round, after a restart
// or on a reconcile request, calls the callback's resume and leaves its
// other events' permanent failures as they were: recorded, and not called
// again (but for a sync, which a reconcile request calls once more).
func TestAResumeRoundKeepsTheCallbacksPermanentFailuresOfOtherEvents(t *testing.T) {
	restart := func(t *testing.T, ns string, stop func(), op *spec.WebhookOperator) {
		stop()
		startGateway(t, op)
	}
	request := func(t *testing.T, ns string, _ func(), _ *spec.WebhookOperator) {
		annotateWidget(t, ns, "example", decide.ReconcileRequestAnnotation, time.Now().UTC().Format(time.RFC3339Nano))
	}
	for _, tc := range []struct {
		name    string
		failing spec.Event
		resume  func(t *testing.T, ns string, stop func(), op *spec.WebhookOperator)
		again   int // calls of the failing event the resume round makes
	}{
		{"sync, restart", spec.EventSync, restart, 0},
		{"update, restart", spec.EventUpdate, restart, 0},
		{"sync, reconcile request", spec.EventSync, request, 1},
		{"update, reconcile request", spec.EventUpdate, request, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			var markers atomic.Int32
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				switch {
				case req.Event == callbacks.Event(tc.failing):
					return 200, map[string]any{"error": map[string]any{"message": "bad spec", "permanent": true}}
				case req.Callback == "marker" && markers.Add(1) == 1:
					return 200, map[string]any{"requeueAfter": "1s"}
				}
				return 200, nil
			})
			op := operatorFor(t, "keeper", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Callbacks = []spec.Callback{
					{ID: "reconcile", Events: []spec.Event{tc.failing, spec.EventResume}},
					{ID: "marker", Events: []spec.Event{spec.EventResume}},
				}
			})
			stop := startGateway(t, op)
			createWidget(t, ns, "example", 1)
			eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "keeper") })
			if tc.failing == spec.EventUpdate {
				updateWidget(t, ns, "example", setSize(2))
			}
			eventually(t, 10*time.Second, func() error { return stateSettled(t, ns, "example", "keeper") })
			before := len(eventCalls(h, "reconcile", tc.failing))

			tc.resume(t, ns, stop, op)
			// The marker's first resume asked to be called again: the
			// second call comes from a pass after the resume round's, once
			// that round's state is written and what it made due was called.
			eventually(t, 20*time.Second, func() error { return called(h, "marker", 2) })
			if n := len(eventCalls(h, "reconcile", spec.EventResume)); n != 1 {
				t.Errorf("reconcile's resume called %d times, want once", n)
			}
			if err := stateSettled(t, ns, "example", "keeper"); err != nil {
				t.Errorf("after the resume round, at the same essence: %v", err)
			}
			if n := len(eventCalls(h, "reconcile", tc.failing)) - before; n != tc.again {
				t.Errorf("%s, failed permanently at this essence, called %d more times after the resume round, want %d", tc.failing, n, tc.again)
			}
		})
	}
}

// eventCalls is the calls of a callback for one event.
func eventCalls(h *handler, callback string, event spec.Event) []callbacks.Request {
	var out []callbacks.Request
	for _, r := range h.calls(callback) {
		if r.Event == callbacks.Event(event) {
			out = append(out, r)
		}
	}
	return out
}

// operations.md: "On shutdown (SIGTERM, lost leadership) calls in flight
// are cancelled and not counted as failures". With maxAttempts 2, a create
// call cut off by a gateway restart, then one real temporary failure, must
// still get the retry after that failure: the handler failed once.
func TestACallCutOffByShutdownDoesNotCountTowardsMaxAttempts(t *testing.T) {
	ns := newNamespace(t)
	var n atomic.Int32
	release := make(chan struct{})
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch n.Add(1) {
		case 1:
			select { // in flight while the gateway stops
			case <-release:
			case <-time.After(20 * time.Second):
			}
			return 200, nil
		case 2:
			return 200, map[string]any{"error": map[string]any{"message": "database not ready"}}
		}
		return 200, nil
	})
	two := 2
	op := operatorFor(t, "rolled", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Retry.MaxAttempts = &two
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return called(h, "create", 1) })
	stop() // a rolling update of the gateway
	close(release)
	startGateway(t, op)
	eventually(t, 15*time.Second, func() error {
		if err := stateHandled(t, ns, "example", "rolled"); err != nil {
			return fmt.Errorf("create attempts %v: %w", attemptsOf(h, "create"), err)
		}
		return nil
	})
}

func attemptsOf(h *handler, callback string) []int {
	var out []int
	for _, r := range h.calls(callback) {
		out = append(out, r.Attempt)
	}
	return out
}

// After a restart, a resume callback whose handler is down (temporary
// failures, retried without end) does not keep the update callbacks from
// a change made since: callbacks are independent (docs/architecture.md).
// The resume is still retried beside the update round, also when the same
// callback's update succeeded.
func TestAFailingResumeDoesNotHoldALaterChangeBack(t *testing.T) {
	for _, tc := range []struct {
		name           string
		callbacks      []spec.Callback
		resume, update string // the callbacks called for each
	}{
		{"two callbacks", []spec.Callback{
			{ID: "warmup", Events: []spec.Event{spec.EventResume}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
		}, "warmup", "resize"},
		{"one callback for both", []spec.Callback{
			{ID: "reconcile", Events: []spec.Event{spec.EventResume, spec.EventUpdate}},
		}, "reconcile", "reconcile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Event == callbacks.EventResume {
					return 503, nil
				}
				return 200, nil
			})
			op := operatorFor(t, "resumedown", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(200 * time.Millisecond)
				s.Retry.MaxDelay = &spec.Duration{Duration: time.Second}
				s.Callbacks = tc.callbacks
			})
			stop := startGateway(t, op)
			createWidget(t, ns, "example", 1)
			eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "resumedown") })
			stop()
			startGateway(t, op)
			resumes := func() int { return len(eventCalls(h, tc.resume, spec.EventResume)) }
			eventually(t, 10*time.Second, func() error {
				if resumes() == 0 {
					return fmt.Errorf("resume not called yet")
				}
				return nil
			})
			updateWidget(t, ns, "example", setSize(2))
			eventually(t, 15*time.Second, func() error {
				for _, r := range eventCalls(h, tc.update, spec.EventUpdate) {
					if sizeOf(r) == 2 {
						return nil
					}
				}
				return fmt.Errorf("update not called for size 2; resume called %d times, failing", resumes())
			})
			after := resumes()
			eventually(t, 15*time.Second, func() error {
				if n := resumes() - after; n < 2 {
					return fmt.Errorf("resume called %d times since the update, want it retried", n)
				}
				return nil
			})
		})
	}
}

func sizeOf(req callbacks.Request) int64 {
	n, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size")
	return n
}

// contract.md: a requeueAfter is kept in memory only, a restarted gateway
// forgets it. A requeued update the shutdown cut off is then owed no more:
// its record must not keep Reconciled=False until the spec changes, with
// resume callbacks (whose round ends it) or without.
func TestAnInterruptedRequeuedUpdateDoesNotKeepTheObjectUnreconciled(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resume bool
	}{
		{"without resume callbacks", false},
		{"with resume callbacks", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			var updates atomic.Int32
			release := make(chan struct{})
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Event != callbacks.EventUpdate {
					return 200, nil
				}
				switch updates.Add(1) {
				case 1:
					return 200, map[string]any{"requeueAfter": "1s"}
				case 2:
					select { // the requeued call, in flight while the gateway stops
					case <-release:
					case <-time.After(20 * time.Second):
					}
				}
				return 200, nil
			})
			op := operatorFor(t, "requeuer", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Status = &spec.StatusSpec{Conditions: true}
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
				}
				if tc.resume {
					s.Callbacks = append(s.Callbacks, spec.Callback{ID: "warmup", Events: []spec.Event{spec.EventResume}})
				}
			})
			stop := startGateway(t, op)
			createWidget(t, ns, "example", 1)
			eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "requeuer") })
			updateWidget(t, ns, "example", setSize(2))
			eventually(t, 10*time.Second, func() error { return called(h, "resize", 2) })
			stop()
			close(release)
			eventually(t, 10*time.Second, reconciled(t, ns, "example", "False/Interrupted", ""))

			startGateway(t, op)
			eventually(t, 15*time.Second, reconciled(t, ns, "example", "True", ""))
			if n := len(h.calls("resize")); n != 2 {
				t.Errorf("resize called %d times, want 2: the restarted gateway forgets the requeue", n)
			}
		})
	}
}
