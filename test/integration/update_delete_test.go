package integration

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

func TestUpdateCarriesDiffAndFieldFilterSkipsLabelOnlyChanges(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	startGateway(t, operatorFor(t, "update", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
			{ID: "any-update", Events: []spec.Event{spec.EventUpdate}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return called(h, "create", 1) })

	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) { w.SetLabels(map[string]string{"tier": "cache"}) })
	eventually(t, 10*time.Second, func() error { return called(h, "any-update", 1) })

	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(3), "spec", "size")
	})
	eventually(t, 10*time.Second, func() error { return called(h, "resize", 1) })
	eventually(t, 10*time.Second, func() error { return called(h, "any-update", 2) })

	resize := h.calls("resize")
	if len(resize) != 1 {
		t.Fatalf("resize called %d times, want once: the label-only change must not call it", len(resize))
	}
	r := resize[0]
	if len(r.Diff) != 1 || r.Diff[0].Path != "spec.size" || string(r.Diff[0].Old) != "1" || string(r.Diff[0].New) != "3" {
		t.Errorf("diff = %+v, want one change of spec.size from 1 to 3", r.Diff)
	}
	if r.Old == nil {
		t.Fatal("update request has no old object")
	}
	if size, _, _ := unstructured.NestedInt64(r.Old.Object, "spec", "size"); size != 1 {
		t.Errorf("old spec.size = %d, want 1", size)
	}
	if size, _, _ := unstructured.NestedInt64(r.Object.Object, "spec", "size"); size != 3 {
		t.Errorf("object spec.size = %d, want 3", size)
	}
	if n := len(h.calls("create")); n != 1 {
		t.Errorf("create called %d times, want once (the gateway's own writes must not re-trigger it)", n)
	}
}

func TestDeleteCallsCallbackThenReleasesFinalizer(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"finalized": true}))
	startGateway(t, operatorFor(t, "deleter", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil {
			return err
		}
		if !hasFinalizer(w, "opgate.dev/deleter") {
			return fmt.Errorf("finalizers = %v, want opgate.dev/deleter", w.GetFinalizers())
		}
		return called(h, "create", 1)
	})
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		_, err := getWidget(t, ns, "example")
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("widget still there (err %v)", err)
	})
	// One delivery. At least once allows it to arrive twice (an HTTP
	// client resends a request carrying Idempotency-Key when its
	// connection breaks), but never as a second delivery.
	calls := h.calls("cleanup")
	if len(calls) == 0 {
		t.Fatal("cleanup was not called")
	}
	for i, c := range calls {
		if c.Event != callbacks.EventDelete || c.UID != calls[0].UID {
			t.Fatalf("cleanup call %d: event %s, delivery %s; want every call the delete delivery %s", i, c.Event, c.UID, calls[0].UID)
		}
		if c.Object.GetDeletionTimestamp() == nil {
			t.Errorf("delete request's object has no deletionTimestamp")
		}
	}
}

func TestFinalizedFalseKeepsFinalizerAndCallsAgain(t *testing.T) {
	ns := newNamespace(t)
	var deletes atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventDelete && deletes.Add(1) == 1 {
			return 200, map[string]any{"finalized": false, "requeueAfter": "200ms"}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "slowdelete", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "cleanup", Events: []spec.Event{spec.EventDelete}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil {
			return err
		}
		if !hasFinalizer(w, "opgate.dev/slowdelete") {
			return fmt.Errorf("no finalizer yet")
		}
		return nil
	})
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "example")
	at := h.arrivals("cleanup")
	if len(at) != 2 {
		t.Fatalf("cleanup called %d times, want 2 (finalized: false, then released)", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < 200*time.Millisecond {
		t.Errorf("second delete call came %s after the first, want ≥ requeueAfter 200ms", gap)
	}
}

func called(h *handler, callback string, n int) error {
	if got := len(h.calls(callback)); got < n {
		return fmt.Errorf("%s called %d times, want %d", callback, got, n)
	}
	return nil
}

func hasFinalizer(obj *unstructured.Unstructured, name string) bool {
	for _, f := range obj.GetFinalizers() {
		if f == name {
			return true
		}
	}
	return false
}

// One callback handles update and delete. Its update fails (maxAttempts 3)
// and waits out a backoff longer than the test; then the object is
// deleted: the delete is a delivery of its own,
// called at once as attempt 1, so that one failure of it is not its third
// and last (which would keep the object Terminating until someone edits or
// annotates it).
func TestDeleteStartsItsOwnRetriesAfterAFailingUpdateOfTheSameCallback(t *testing.T) {
	ns := newNamespace(t)
	var deletes atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Event {
		case callbacks.EventUpdate:
			return 503, nil
		case callbacks.EventDelete:
			if deletes.Add(1) == 1 {
				return 200, map[string]any{"error": map[string]any{"message": "blip", "retryAfter": "200ms"}}
			}
		}
		return 200, nil
	})
	three := 3
	startGateway(t, operatorFor(t, "shared", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(time.Hour) // the update's backoff outlasts the test
		s.Retry.MaxDelay = &spec.Duration{Duration: time.Hour}
		s.Retry.MaxAttempts = &three
		s.Callbacks = []spec.Callback{{ID: "main", Events: []spec.Event{spec.EventCreate, spec.EventUpdate, spec.EventDelete}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return called(h, "main", 1) })
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	eventually(t, 10*time.Second, func() error { return called(h, "main", 2) }) // create, the update's first try
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "example")
	var attempts []int
	for _, r := range h.calls("main") {
		if r.Event == callbacks.EventDelete {
			attempts = append(attempts, r.Attempt)
		}
	}
	if len(attempts) != 2 || attempts[0] != 1 || attempts[1] != 2 {
		t.Errorf("delete calls' attempts = %v, want [1 2]: a delivery of its own", attempts)
	}
}

// One callback on update and sync; its update keeps failing while its sync
// succeeds. The sync's success does not end the update's retries: they go
// on with growing delays up to maxAttempts (before, each success reset the
// update to attempt 1, which never reached maxAttempts).
func TestASyncsSuccessDoesNotResetTheSameCallbacksFailingUpdate(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventUpdate {
			return 503, nil
		}
		return 200, nil
	})
	five := 5
	startGateway(t, operatorFor(t, "shared-sync", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(100 * time.Millisecond)
		s.Retry.MaxAttempts = &five
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "main", Events: []spec.Event{spec.EventUpdate, spec.EventSync}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return called(h, "create", 1) })
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	updates := func() (n, last int) {
		for _, r := range h.calls("main") {
			if r.Event == callbacks.EventUpdate {
				n, last = n+1, r.Attempt
			}
		}
		return n, last
	}
	eventually(t, 30*time.Second, func() error {
		if n, last := updates(); last != five {
			return fmt.Errorf("%d update calls, the last attempt %d, want attempt %d", n, last, five)
		}
		return nil
	})
	if n, _ := updates(); n != five {
		t.Errorf("%d update calls up to attempt %d, want one per attempt", n, five)
	}
}

// One callback on update and sync, maxAttempts 4. Its update keeps failing;
// its sync fails every other call and asks to be called again soon after
// each success. Each event counts its own attempts: the update makes
// attempts 1 to 4, once each, and then fails permanently (its round ends);
// every sync failure is the sync's attempt 1 and its retry attempt 2; and
// the update's permanent failure does not stop the sync. Before, the two
// shared one retry record: the sync went on from the update's attempt
// count, its failures took the record over and its successes sent the
// update back to attempt 1, so the update never made its own attempts.
func TestAFlakySyncDoesNotTakeOverTheSameCallbacksFailingUpdate(t *testing.T) {
	ns := newNamespace(t)
	var syncs atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Event {
		case callbacks.EventUpdate:
			return 503, nil
		case callbacks.EventSync:
			if failsSync(syncs.Add(1)) {
				return 503, nil
			}
			return 200, map[string]any{"requeueAfter": "50ms"}
		}
		return 200, nil
	})
	const four = 4
	startGateway(t, operatorFor(t, "flaky-sync", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(100 * time.Millisecond)
		s.Retry.MaxAttempts = ptr(four)
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "main", Events: []spec.Event{spec.EventUpdate, spec.EventSync}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "flaky-sync") })
	created := decodedState(t, ns, "example", "flaky-sync").Handled
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	calls := func(event callbacks.Event) (out []callbacks.Request) {
		for _, r := range h.calls("main") {
			if r.Event == event {
				out = append(out, r)
			}
		}
		return out
	}
	attempts := func(event callbacks.Event) (out []int) {
		for _, r := range calls(event) {
			out = append(out, r.Attempt)
		}
		return out
	}
	eventually(t, 30*time.Second, func() error {
		if st := decodedState(t, ns, "example", "flaky-sync"); st.Handled == created || st.Round != nil {
			return fmt.Errorf("the update round has not ended; update attempts so far %v", attempts(callbacks.EventUpdate))
		}
		return nil
	})
	if got := attempts(callbacks.EventUpdate); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("update calls' attempts = %v, want [1 2 3 4]: its own, up to maxAttempts", got)
	}
	if pr := decodedState(t, ns, "example", "flaky-sync").ProgressFor("main", "update"); pr == nil || !pr.Failed || pr.Attempts != four {
		t.Errorf("the update's record = %+v, want failed permanently at attempt %d", pr, four)
	}
	syncsThen := len(calls(callbacks.EventSync))
	eventually(t, 10*time.Second, func() error {
		if n := len(calls(callbacks.EventSync)); n < syncsThen+4 {
			return fmt.Errorf("%d sync calls since the update failed permanently, want it called on", n-syncsThen)
		}
		return nil
	})
	// The handler fails every other sync call: at one essence, a failed
	// call's retry is the sync's attempt 2, and no sync call goes past it.
	all := calls(callbacks.EventSync)
	for i, r := range all {
		size, _, _ := unstructured.NestedInt64(r.Object.Object, "spec", "size")
		prev := int64(0)
		if i > 0 {
			prev, _, _ = unstructured.NestedInt64(all[i-1].Object.Object, "spec", "size")
		}
		want := 1
		if i > 0 && failsSync(int32(i)) && prev == size {
			want = 2
		}
		if r.Attempt != want {
			t.Errorf("sync call %d is attempt %d, want %d (all: %v)", i+1, r.Attempt, want, attempts(callbacks.EventSync))
			break
		}
	}
	if got := attempts(callbacks.EventUpdate); len(got) != four {
		t.Errorf("update calls' attempts = %v after it failed permanently, want no more", got)
	}
}

// failsSync says whether the n-th sync call (from 1) fails: every other.
func failsSync(n int32) bool { return n%2 == 1 }
