package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// annotateWidget sets one annotation by merge patch.
func annotateWidget(t *testing.T, ns, name, key, value string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: value}}})
	if _, err := dyn(t).Resource(widgets).Namespace(ns).Patch(context.Background(), name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		t.Fatalf("annotate widget: %v", err)
	}
}

// decodedState reads an operator's state annotation with the engine's code.
func decodedState(t *testing.T, ns, name, operator string) *state.State {
	t.Helper()
	w, err := getWidget(t, ns, name)
	if err != nil {
		t.Fatalf("get widget: %v", err)
	}
	st, err := state.Decode(w.GetAnnotations()["opgate.dev/state."+operator])
	if err != nil {
		t.Fatalf("state of %s: %v", name, err)
	}
	return st
}

func requestHandled(t *testing.T, ns, name, operator, value string) func() error {
	return func() error {
		if st := decodedState(t, ns, name, operator); !st.RequestHandled(value) {
			return fmt.Errorf("handled reconcile request %.40q, want the one of %.40q", st.Requested, value)
		}
		return nil
	}
}

// A new reconcile-requested-at value ends an hour-long backoff wait at
// once and calls the failing callback exactly once; the same value, also
// seen by a restarted gateway, calls nothing.
func TestReconcileRequestEndsABackoffWaitOnceAndNeverTwice(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		return 200, map[string]any{"error": map[string]any{"message": "not yet", "retryAfter": "1h"}}
	})
	op := operatorFor(t, "asked", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = &spec.RetrySpec{MaxDelay: &spec.Duration{Duration: 2 * time.Hour}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error {
		if p := decodedState(t, ns, "example", "asked").Progress["create"]; p == nil || p.Attempts != 1 {
			return fmt.Errorf("first failure not recorded yet: %+v", p)
		}
		return nil
	})

	value := time.Now().UTC().Format(time.RFC3339)
	asked := time.Now()
	annotateWidget(t, ns, "example", decide.ReconcileRequestAnnotation, value)
	eventually(t, 20*time.Second, func() error { return called(h, "create", 2) })
	t.Logf("called again %s after the request", h.arrivals("create")[1].Sub(asked).Round(time.Millisecond))
	eventually(t, 20*time.Second, requestHandled(t, ns, "example", "asked", value))
	if p := decodedState(t, ns, "example", "asked").Progress["create"]; p == nil || p.Attempts != 2 || !p.Next.After(time.Now().Add(30*time.Minute)) {
		t.Fatalf("progress after the request = %+v, want attempt 2 waiting about an hour", p)
	}

	// The same value again, and a restarted gateway reading it: nothing.
	annotateWidget(t, ns, "example", decide.ReconcileRequestAnnotation, value)
	stop()
	startGateway(t, op)
	createWidget(t, ns, "witness", 1) // its create is the restarted gateway's proof of life
	eventually(t, 20*time.Second, func() error { return calledForName(h, "create", "witness") })
	if n := countFor(h, "create", "example"); n != 2 {
		t.Fatalf("create called %d times for the annotated object, want 2 (once for the request)", n)
	}
}

// On a settled object a request calls what runs level-triggered: sync
// (and resume) when registered; an operator with neither calls nothing,
// and still records the request as handled.
func TestReconcileRequestOnASettledObjectRunsSyncOrNothing(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{}))
	withSync := operatorFor(t, "with-sync", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}, {ID: "sync", Events: []spec.Event{spec.EventSync}}}
	})
	plain := operatorFor(t, "plain", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "make", Events: []spec.Event{spec.EventCreate}}}
	})
	startGateway(t, withSync, plain)
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "with-sync") })
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "plain") })
	eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })
	syncs := len(h.calls("sync"))

	value := time.Now().UTC().Format(time.RFC3339)
	annotateWidget(t, ns, "example", decide.ReconcileRequestAnnotation, value)
	eventually(t, 20*time.Second, requestHandled(t, ns, "example", "with-sync", value))
	eventually(t, 20*time.Second, requestHandled(t, ns, "example", "plain", value))
	eventually(t, 20*time.Second, func() error { return called(h, "sync", syncs+1) })
	if n := len(h.calls("sync")); n != syncs+1 {
		t.Errorf("sync called %d more times after one request, want 1", n-syncs)
	}
	if n, m := len(h.calls("create")), len(h.calls("make")); n != 1 || m != 1 {
		t.Errorf("create callbacks called %d and %d times, want once each: a settled object has nothing else due", n, m)
	}
}

// A create callback that failed permanently is owed (the create round
// stays open): a request calls it once more, as the next attempt.
func TestReconcileRequestRetriesAPermanentlyFailedCreateOnce(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		return 200, map[string]any{"error": map[string]any{"message": "bad spec", "permanent": true}}
	})
	startGateway(t, operatorFor(t, "stuck", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error {
		if p := decodedState(t, ns, "example", "stuck").Progress["create"]; p == nil || !p.Failed {
			return fmt.Errorf("permanent failure not recorded yet: %+v", p)
		}
		return nil
	})
	value := time.Now().UTC().Format(time.RFC3339)
	annotateWidget(t, ns, "example", decide.ReconcileRequestAnnotation, value)
	eventually(t, 20*time.Second, requestHandled(t, ns, "example", "stuck", value))
	eventually(t, 20*time.Second, func() error { return called(h, "create", 2) })
	calls := h.calls("create")
	if len(calls) != 2 || calls[1].Attempt != 2 || calls[1].UID != calls[0].UID {
		t.Fatalf("create calls %d, second attempt %d, same delivery %v; want 2 calls, the second attempt 2 of the same delivery",
			len(calls), calls[len(calls)-1].Attempt, calls[len(calls)-1].UID == calls[0].UID)
	}
	if p := decodedState(t, ns, "example", "stuck").Progress["create"]; p == nil || !p.Failed || p.Attempts != 2 {
		t.Fatalf("progress = %+v, want failed permanently again after attempt 2", p)
	}
}

// The annotation is free text: a value far over the state's own size (a
// 150 000-character one) is kept as a digest, so the state is still
// written, and the request fires once.
func TestReconcileRequestWithAHugeValueFiresOnce(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{}))
	startGateway(t, operatorFor(t, "huge", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}, {ID: "sync", Events: []spec.Event{spec.EventSync}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "huge") })
	eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })
	syncs := len(h.calls("sync"))

	value := strings.Repeat("x", 150_000)
	annotateWidget(t, ns, "example", decide.ReconcileRequestAnnotation, value)
	eventually(t, 30*time.Second, requestHandled(t, ns, "example", "huge", value))
	eventually(t, 20*time.Second, func() error { return called(h, "sync", syncs+1) })
	// The create of another object proves the gateway went on, without
	// taking the same request for a new one.
	createWidget(t, ns, "witness", 1)
	eventually(t, 20*time.Second, func() error { return calledForName(h, "create", "witness") })
	if n := countFor(h, "sync", "example"); n != syncs+1 {
		t.Errorf("sync called %d times for the object, want %d (once for the request)", n, syncs+1)
	}
}
