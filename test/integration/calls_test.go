package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

func setSize(size int64) func(*unstructured.Unstructured) {
	return func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, size, "spec", "size")
	}
}

func TestPermanentlyFailedCreateRunsAgainWhenTheEssenceChanges(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		size, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size")
		switch {
		case req.Callback == "provision" && size == 1:
			return 200, map[string]any{"error": map[string]any{"message": "size 1 can never be provisioned", "permanent": true}}
		case req.Callback == "provision":
			return 200, map[string]any{"status": map[string]any{"message": fmt.Sprintf("provisioned %d", size)}}
		}
		return 200, map[string]any{}
	})
	startGateway(t, operatorFor(t, "recreate", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "register", Events: []spec.Event{spec.EventCreate}},
			{ID: "provision", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return stateSettled(t, ns, "example", "recreate") })

	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 20*time.Second, func() error { return called(h, "provision", 2) })
	eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "provisioned 2") })
	provision := h.calls("provision")
	if got := provision[1]; got.Event != callbacks.EventCreate || got.Attempt != 1 || got.UID == provision[0].UID {
		t.Errorf("second provision call: event %q attempt %d uid %q (first %q); want a fresh create delivery",
			got.Event, got.Attempt, got.UID, provision[0].UID)
	}
	if n := len(h.calls("register")); n != 1 {
		t.Errorf("register, which succeeded, was called %d times; want once", n)
	}
	// register acted on size 1: the change to 2 reaches the update
	// callbacks once create has succeeded, not before.
	eventually(t, 20*time.Second, func() error { return called(h, "resize", 1) })
	if first := h.arrivals("resize")[0]; first.Before(h.arrivals("provision")[1]) {
		t.Errorf("resize (update) was called at %s, before create succeeded at %s", first, h.arrivals("provision")[1])
	}
	if err := resizedFrom(h.calls("resize")[0], 1, 2); err != nil {
		t.Error(err)
	}
	// Sync begins once create has succeeded, not after its permanent failure.
	eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })
	if first := h.arrivals("sync")[0]; first.Before(h.arrivals("provision")[1]) {
		t.Errorf("sync was called at %s, before create succeeded at %s", first, h.arrivals("provision")[1])
	}

	// Created now: the next change is an update.
	updateWidget(t, ns, "example", setSize(3))
	eventually(t, 20*time.Second, func() error { return called(h, "resize", 2) })
	if n := len(h.calls("provision")); n != 2 {
		t.Errorf("provision called %d times after create succeeded and the spec changed; want 2", n)
	}
}

func TestRequeuedCallThatFailsIsRetried(t *testing.T) {
	for _, event := range []spec.Event{spec.EventCreate, spec.EventUpdate} {
		t.Run(string(event), func(t *testing.T) {
			ns := newNamespace(t)
			var n atomic.Int32
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				switch n.Add(1) {
				case 1:
					return 200, map[string]any{"requeueAfter": "200ms"}
				case 2:
					return 200, map[string]any{"error": map[string]any{"message": "not ready yet"}}
				}
				return 200, map[string]any{"status": map[string]any{"message": "ready"}}
			})
			startGateway(t, operatorFor(t, "requeue", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(100 * time.Millisecond)
				s.Callbacks = []spec.Callback{{ID: "check", Events: []spec.Event{event}}}
			}))
			createWidget(t, ns, "example", 1)
			if event == spec.EventUpdate {
				eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "requeue") })
				updateWidget(t, ns, "example", setSize(2))
			}
			eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "ready") })
			calls := h.calls("check")
			if len(calls) != 3 {
				t.Fatalf("check called %d times, want 3 (requeueAfter, a temporary error, success)", len(calls))
			}
			for i, c := range calls {
				if c.Event != callbacks.Event(event) {
					t.Errorf("call %d has event %q, want %q", i+1, c.Event, event)
				}
			}
			if calls[2].UID != calls[1].UID || calls[2].Attempt != 2 {
				t.Errorf("third call: uid %q attempt %d; want the retry of the failed requeued call (uid %q, attempt 2)",
					calls[2].UID, calls[2].Attempt, calls[1].UID)
			}
		})
	}
}

// A requeued update is an update call: it carries old, the last handled
// object (the one it was called for, once its round ended), and the diff
// from it, as every update does; its when.fields filter does not hold it
// back (a requeue is no change).
func TestARequeuedUpdateCarriesOldAndDiff(t *testing.T) {
	ns := newNamespace(t)
	var n atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "resize" && n.Add(1) == 1 {
			return 200, map[string]any{"requeueAfter": "200ms"}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "requeue", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "requeue") })
	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 20*time.Second, func() error { return called(h, "resize", 2) })

	first, requeued := h.calls("resize")[0], h.calls("resize")[1]
	if len(first.Diff) != 1 || first.Diff[0].Path != "spec.size" {
		t.Fatalf("first call's diff = %+v, want the change of spec.size", first.Diff)
	}
	if requeued.Event != callbacks.EventUpdate || requeued.OldUnavailable {
		t.Fatalf("requeued call: event %q, oldUnavailable %v; want update, false", requeued.Event, requeued.OldUnavailable)
	}
	if requeued.Old == nil {
		t.Fatal("requeued update carries no old object")
	}
	if size, _, _ := unstructured.NestedInt64(requeued.Old.Object, "spec", "size"); size != 2 {
		t.Errorf("requeued update's old spec.size = %d, want 2 (handled by the first call)", size)
	}
	if len(requeued.Diff) != 0 {
		t.Errorf("requeued update's diff = %+v, want none: nothing changed since the first call", requeued.Diff)
	}
}

// when.labels filters every call, a requeued one too: a requeued update of
// an object that left the callback's labels is not made. A second callback,
// requeued for later, shows the first one's moment has passed.
func TestARequeuedCallIsHeldToWhenLabels(t *testing.T) {
	ns := newNamespace(t)
	arrived, proceed := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(proceed) }) }
	t.Cleanup(release) // before the gateway stops: its pass waits for it
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch {
		case req.Callback == "tiered" && req.Event == callbacks.EventUpdate:
			select {
			case arrived <- struct{}{}:
			default:
			}
			<-proceed // the test takes the label away meanwhile
			return 200, map[string]any{"requeueAfter": "1s"}
		case req.Callback == "witness" && req.Object.GetLabels()["tier"] == "" && len(req.Diff) > 0:
			return 200, map[string]any{"requeueAfter": "2s"}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "tiered", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "tiered", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Labels: map[string]string{"tier": "cache"}}},
			{ID: "witness", Events: []spec.Event{spec.EventUpdate}},
		}
	}))
	createLabelledWidget(t, ns, "example", map[string]string{"tier": "cache"})
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "tiered") })
	updateWidget(t, ns, "example", setSize(2))
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("tiered not called for the change of spec.size")
	}
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) { w.SetLabels(nil) })
	release() // tiered asks to be called again in 1s, the label already gone

	// witness: the size change, the label's removal (requeueAfter 2s), then
	// the requeued call, after tiered's requeue was due.
	eventually(t, 30*time.Second, func() error { return called(h, "witness", 3) })
	if n := len(h.calls("tiered")); n != 1 {
		t.Errorf("tiered called %d times, want once: its requeued call came when the object no longer had tier=cache", n)
	}
}

// A requeue is one event's: a callback on [update, sync] that answered its
// update with requeueAfter is called again with update, though a sync of
// the same callback succeeded (without requeueAfter) in between.
func TestASyncOfTheSameCallbackDoesNotCancelAnUpdatesRequeue(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventUpdate {
			return 200, map[string]any{"requeueAfter": "1s"}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "requeuer", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "reconcile", Events: []spec.Event{spec.EventUpdate, spec.EventSync}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "requeuer") })
	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 20*time.Second, func() error {
		var n int
		for _, r := range h.calls("reconcile") {
			if r.Event == callbacks.EventUpdate {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("update called %d times, want ≥ 2 (the first answered requeueAfter 1s)", n)
		}
		return nil
	})
}

// Delete is apart: a callback on [update, delete] whose update asked to be
// called again in a minute is called with delete as soon as the object is
// deleted, not once the update's requeue is due.
func TestAnUpdatesRequeueDoesNotHoldTheDeleteBack(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventUpdate {
			return 200, map[string]any{"requeueAfter": "1m"}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "holder", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "reconcile", Events: []spec.Event{spec.EventUpdate, spec.EventDelete}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "holder") })
	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 20*time.Second, func() error { return called(h, "reconcile", 1) })
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "holder") })
	deleteWidget(t, ns, "example")
	start := time.Now()
	eventually(t, 20*time.Second, func() error {
		for _, r := range h.calls("reconcile") {
			if r.Event == callbacks.EventDelete {
				return nil
			}
		}
		return fmt.Errorf("delete not called %s after the deletion", time.Since(start).Round(time.Second))
	})
	waitWidgetGone(t, ns, "example")
}

// maxDelay caps a handler's requeueAfter as it caps its retryAfter: a
// handler that asks for an hour (a delete callback answering finalized:
// false, say, which keeps the object Terminating meanwhile) is called
// again after maxDelay.
func TestRequeueAfterIsCappedByMaxDelay(t *testing.T) {
	for _, event := range []spec.Event{spec.EventCreate, spec.EventTimer, spec.EventDelete} {
		t.Run(string(event), func(t *testing.T) {
			ns := newNamespace(t)
			var answered atomic.Bool
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Event != callbacks.Event(event) || answered.Swap(true) {
					return 200, nil
				}
				if event == spec.EventDelete {
					return 200, map[string]any{"finalized": false, "requeueAfter": "1h"}
				}
				return 200, map[string]any{"requeueAfter": "1h"}
			})
			startGateway(t, operatorFor(t, "capped", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(100 * time.Millisecond)
				s.Retry.MaxDelay = &spec.Duration{Duration: time.Second}
				s.Callbacks = []spec.Callback{{ID: "main", Events: []spec.Event{event}, Interval: intervalFor(event)}}
			}))
			createWidget(t, ns, "example", 1)
			if event == spec.EventDelete {
				eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "capped") })
				deleteWidget(t, ns, "example")
			}
			eventually(t, 20*time.Second, func() error { return called(h, "main", 2) })
			if event == spec.EventDelete {
				waitWidgetGone(t, ns, "example")
			}
		})
	}
}

// intervalFor is a timer's interval, an hour: longer than any test waits.
func intervalFor(event spec.Event) *spec.Duration {
	if event != spec.EventTimer {
		return nil
	}
	return &spec.Duration{Duration: time.Hour}
}

func TestTimerRequeueAfterSetsTheNextFire(t *testing.T) {
	ns := newNamespace(t)
	var n atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if n.Add(1) == 1 {
			return 200, map[string]any{"requeueAfter": "300ms"}
		}
		return 200, map[string]any{"status": map[string]any{"message": "ticked again"}}
	})
	startGateway(t, operatorFor(t, "ticker", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "tick", Events: []spec.Event{spec.EventTimer}, Interval: &spec.Duration{Duration: time.Hour}}}
	}))
	createWidget(t, ns, "example", 1)
	// Without requeueAfter the second tick would come in an hour.
	eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "ticked again") })
	at := h.arrivals("tick")
	if len(at) != 2 {
		t.Fatalf("tick called %d times, want 2", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < 300*time.Millisecond {
		t.Errorf("second tick came %s after the first, want ≥ requeueAfter 300ms", gap)
	}
}

func TestWaitingForACallbackSlotDoesNotCountAgainstThePassDeadline(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		time.Sleep(250 * time.Millisecond) // a slow handler: the other objects queue for the one slot
		return 200, map[string]any{"status": map[string]any{"message": "ready"}}
	})
	op := operatorFor(t, "queued", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Concurrency = &spec.Concurrency{MaxInFlight: 1}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	// 12 calls of 250 ms one after the other take longer than a pass may work.
	startGatewayWithOptions(t, runner.Options{ReconcileTimeout: 2 * time.Second}, op)
	const objects = 12
	for i := range objects {
		createWidget(t, ns, fmt.Sprintf("w%d", i), 1)
	}
	eventually(t, 60*time.Second, func() error {
		for i := range objects {
			if err := statusMessage(t, ns, fmt.Sprintf("w%d", i), "ready"); err != nil {
				return err
			}
		}
		return nil
	})
	assertOneDeliveryPerObject(t, h, "create")
}

func TestCallbacksThatSucceededAreRecordedWhenThePassRunsOutOfTime(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		time.Sleep(1200 * time.Millisecond) // two of these do not fit in one pass
		return 200, map[string]any{}
	})
	startGatewayWithOptions(t, runner.Options{ReconcileTimeout: 2 * time.Second}, operatorFor(t, "slow", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(100 * time.Millisecond)
		s.Callbacks = []spec.Callback{
			{ID: "first", Events: []spec.Event{spec.EventCreate}},
			{ID: "second", Events: []spec.Event{spec.EventCreate}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 60*time.Second, func() error { return stateHandled(t, ns, "example", "slow") })
	if n := len(h.calls("first")); n != 1 {
		t.Errorf("first, which succeeded in the pass that then ran out of time, was called %d times; want once", n)
	}
	assertOneDeliveryPerObject(t, h, "first")
	assertOneDeliveryPerObject(t, h, "second")
}

// assertOneDeliveryPerObject checks that no object got the callback as more
// than one delivery: retries keep the uid, and a call that succeeded is
// never delivered anew.
func assertOneDeliveryPerObject(t *testing.T, h *handler, callback string) {
	t.Helper()
	uids := map[string]map[string]bool{}
	for _, r := range h.calls(callback) {
		name := r.Object.GetName()
		if uids[name] == nil {
			uids[name] = map[string]bool{}
		}
		uids[name][r.UID] = true
	}
	for name, set := range uids {
		if len(set) != 1 {
			t.Errorf("%s got %s as %d deliveries (uids %v); want one", name, callback, len(set), set)
		}
	}
}

func TestErrorAnswerAppliesStatusAndEventsButNoChildren(t *testing.T) {
	for _, tt := range []struct {
		name        string
		permanent   bool
		status      map[string]any
		wantMessage string
		wantWarning string // besides HandlerError
	}{
		{"temporary", false, map[string]any{"message": "database down"}, "database down", ""},
		{"permanent", true, map[string]any{"message": "database gone"}, "database gone", ""},
		{"status of the wrong type", true, map[string]any{"nodes": "not a list"}, "", "InvalidStatus"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				return 200, map[string]any{
					"error":    map[string]any{"message": "the database is not there", "permanent": tt.permanent},
					"status":   tt.status,
					"children": []any{deployment(req.Object.GetName(), 1)},
					"events":   []any{map[string]any{"type": "Warning", "reason": "DatabaseDown", "message": "no database"}},
				}
			})
			startGateway(t, operatorFor(t, "failing", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(time.Second)
				s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
			}))
			createWidget(t, ns, "example", 1)
			eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "HandlerError") })
			eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "DatabaseDown") })
			if tt.wantWarning != "" {
				eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", tt.wantWarning) })
			}
			eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", tt.wantMessage) })
			_, err := kube(t).AppsV1().Deployments(ns).Get(context.Background(), "example", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				t.Errorf("deployment of an error answer: get returned %v; want NotFound (children of an error answer are never applied)", err)
			}
		})
	}
}
