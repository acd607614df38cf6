package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

func fastRetry(initial time.Duration) *spec.RetrySpec {
	zero, two := 0.0, 2.0
	return &spec.RetrySpec{InitialDelay: &spec.Duration{Duration: initial}, Multiplier: &two, Jitter: &zero,
		MaxDelay: &spec.Duration{Duration: 10 * time.Second}}
}

func TestTemporaryErrorIsRetriedWithGrowingDelaysThenSucceeds(t *testing.T) {
	ns := newNamespace(t)
	var n atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if n.Add(1) <= 3 {
			return 200, map[string]any{"error": map[string]any{"message": "database not ready"}}
		}
		return 200, map[string]any{"status": map[string]any{"message": "ready"}}
	})
	startGateway(t, operatorFor(t, "temporary", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "ready") })

	calls, at := h.calls("create"), h.arrivals("create")
	if len(calls) != 4 {
		t.Fatalf("create called %d times, want 4 (3 failures, 1 success)", len(calls))
	}
	for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
		if gap := at[i+1].Sub(at[i]); gap < want {
			t.Errorf("delay before attempt %d = %s, want ≥ %s (exponential backoff)", i+2, gap, want)
		}
		if calls[i+1].Attempt != i+2 {
			t.Errorf("attempt field of call %d = %d, want %d", i+2, calls[i+1].Attempt, i+2)
		}
		if calls[i+1].UID != calls[0].UID {
			t.Errorf("delivery uid changed across retries: %q then %q", calls[0].UID, calls[i+1].UID)
		}
	}
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "HandlerError") })
}

func TestPermanentErrorStopsRetriesUntilSpecChanges(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer func(callbacks.Request) (int, any)
		reason string
	}{
		{"4xx status", func(callbacks.Request) (int, any) { return 422, []byte("size is invalid") }, "HandlerRejected"},
		{"error body", func(callbacks.Request) (int, any) {
			return 200, map[string]any{"error": map[string]any{"message": "image can never be valid", "permanent": true}}
		}, "HandlerError"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, tt.answer)
			startGateway(t, operatorFor(t, "permanent", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(50 * time.Millisecond)
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "update", Events: []spec.Event{spec.EventUpdate}},
				}
			}))
			createWidget(t, ns, "example", 1)
			eventually(t, 10*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", tt.reason) })
			// Several backoff periods pass; a permanent failure is not retried.
			eventually(t, 10*time.Second, func() error { return stateSettled(t, ns, "example", "permanent") })
			if n := len(h.calls("create")); n != 1 {
				t.Fatalf("create called %d times, want once: permanent errors are not retried", n)
			}
			updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
				_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
			})
			// The object was never created: the change calls create again,
			// as a fresh delivery, not update.
			eventually(t, 10*time.Second, func() error { return called(h, "create", 2) })
			if calls := h.calls("create"); calls[1].Attempt != 1 || calls[1].UID == calls[0].UID {
				t.Errorf("create after the spec change: attempt %d uid %q (before %q); want a fresh delivery", calls[1].Attempt, calls[1].UID, calls[0].UID)
			}
			if n := len(h.calls("update")); n != 0 {
				t.Errorf("update called %d times for an object whose create never succeeded, want none", n)
			}
		})
	}
}

func TestTooManyRequestsHonoursRetryAfter(t *testing.T) {
	ns := newNamespace(t)
	var n atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if n.Add(1) == 1 {
			return 429, nil
		}
		return 200, map[string]any{"status": map[string]any{"message": "ok"}}
	})
	h.Config.Handler = retryAfterOnce(h.Config.Handler, "1")
	startGateway(t, operatorFor(t, "ratelimited", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(10 * time.Millisecond)
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "example", "ok") })
	at := h.arrivals("create")
	if len(at) != 2 {
		t.Fatalf("create called %d times, want 2", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < time.Second {
		t.Errorf("retry came %s after the 429, want ≥ Retry-After 1s (backoff alone would be 10ms)", gap)
	}
}

func TestBadAnswersApplyNothingAndPruneNothing(t *testing.T) {
	for _, tt := range []struct {
		name   string
		code   int
		body   []byte
		reason string
	}{
		{"500 with empty body", 500, nil, "HandlerUnavailable"},
		{"garbage JSON", 200, []byte("{not json"), "InvalidResponse"},
		{"20 MiB body", 200, append(append([]byte(`{"children":[],"status":{"message":"`), make20MiB()...), []byte(`"}}`)...), "InvalidResponse"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			var bad atomic.Bool
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Event == callbacks.EventCreate {
					return 200, map[string]any{"children": []any{deployment(req.Object.GetName(), 1)}}
				}
				bad.Store(true)
				if tt.body == nil {
					return tt.code, nil
				}
				return tt.code, tt.body
			})
			startGateway(t, operatorFor(t, "bad", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(time.Second)
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "sync", Events: []spec.Event{spec.EventSync}},
				}
			}))
			createWidget(t, ns, "example", 1)
			eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", tt.reason) })
			if !bad.Load() {
				t.Fatal("sync was never called")
			}
			if _, err := kube(t).AppsV1().Deployments(ns).Get(context.Background(), "example", metav1.GetOptions{}); err != nil {
				t.Errorf("deployment gone after a bad sync answer (nothing may be pruned): %v", err)
			}
			if err := statusMessage(t, ns, "example", ""); err != nil {
				t.Errorf("status changed after a bad answer: %v", err)
			}
		})
	}
}

func make20MiB() []byte {
	return []byte(strings.Repeat("x", 20<<20))
}

// stateSettled waits until the gateway recorded the callback's permanent
// failure in its state annotation.
func stateSettled(t *testing.T, ns, name, operator string) error {
	w, err := getWidget(t, ns, name)
	if err != nil {
		return err
	}
	st := w.GetAnnotations()["opgate.dev/state."+operator]
	if !strings.Contains(st, `"x":true`) {
		return fmt.Errorf("state %s records no permanent failure yet", st)
	}
	return nil
}

func statusMessage(t *testing.T, ns, name, want string) error {
	w, err := getWidget(t, ns, name)
	if apierrors.IsNotFound(err) || err != nil {
		return fmt.Errorf("get widget: %v", err)
	}
	got, _, _ := unstructured.NestedString(w.Object, "status", "message")
	if got != want {
		return fmt.Errorf("status.message = %q, want %q", got, want)
	}
	return nil
}

func TestSpecChangeEndsABackoffWait(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if size, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size"); size == 1 {
			return 200, map[string]any{"error": map[string]any{"message": "size 1 not ready", "retryAfter": "1h"}}
		}
		return 200, map[string]any{"status": map[string]any{"message": "fixed"}}
	})
	startGateway(t, operatorFor(t, "fixable", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = &spec.RetrySpec{MaxDelay: &spec.Duration{Duration: 2 * time.Hour}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "HandlerError") })
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	// Without the change the next attempt would come in an hour.
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "example", "fixed") })
	if calls := h.calls("create"); len(calls) != 2 || calls[1].Attempt != 1 {
		t.Errorf("create calls = %d, second attempt field %d; want 2 calls, the second a fresh attempt 1", len(calls), calls[len(calls)-1].Attempt)
	}
}

// A child holding a field its kind's schema lacks (a typo: "dat" for
// "data") can never be applied: server-side apply refuses it, answering
// 500 "field not declared in schema". No retry cures the answer's content,
// so the callback fails permanently (ApplyRejected, naming the field), not
// as a temporary ApplyFailed retried for ever.
func TestAChildWithAFieldOutsideItsSchemaFailsPermanently(t *testing.T) {
	ns := newNamespace(t)
	typo := map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings", "namespace": ns},
		"dat":      map[string]any{"mode": "fast"}, // meant "data"
	}
	h := newHandler(t, ok(map[string]any{"children": []any{typo}}))
	startGateway(t, operatorFor(t, "typo", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
		s.Retry = fastRetry(100 * time.Millisecond)
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error {
		for _, e := range events(t, ns, "example") {
			if e.Type == "Warning" && e.Reason == "ApplyRejected" && strings.Contains(e.Message, "dat") {
				return nil
			}
		}
		var reasons []string
		for _, e := range events(t, ns, "example") {
			reasons = append(reasons, fmt.Sprintf("%s/%s x%d: %s", e.Type, e.Reason, e.Count, e.Message))
		}
		return fmt.Errorf("no Warning ApplyRejected naming the field; events %v", reasons)
	})
	// A temporary failure would be retried within 100ms, 200ms, 400ms...:
	// two seconds leave room for several retries that must not come.
	time.Sleep(2 * time.Second)
	if n := len(h.calls("create")); n != 1 {
		t.Errorf("create called %d times for a child that can never be applied, want 1", n)
	}
}
