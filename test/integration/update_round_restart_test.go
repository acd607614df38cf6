package integration

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// resize scaled the Deployment to 2 in an update round still open (audit
// failing at 2) when the gateway restarts; the resume round that comes
// first fails for a while; meanwhile the user takes the change back (size 1).
// contract.md: "those that acted on the taken-back change are called with
// the essence now". resize must hear of 1.
func TestAChangeTakenBackDuringTheResumeRoundAfterARestartReachesTheCallbackThatActedOnIt(t *testing.T) {
	ns := newNamespace(t)
	var resumeDown atomic.Bool
	resumeDown.Store(true)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Callback {
		case "create-deployment", "resize":
			return 200, map[string]any{"children": []any{deployment("example", sizeOf(req))}}
		case "audit":
			if sizeOf(req) == 2 {
				return 200, map[string]any{"error": map[string]any{"message": "audit log unavailable"}}
			}
		case "warmup":
			if resumeDown.Load() {
				return 503, nil
			}
		}
		return 200, nil
	})
	op := operatorFor(t, "revertrs", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Retry.MaxDelay = &spec.Duration{Duration: time.Second}
		s.Callbacks = []spec.Callback{
			{ID: "create-deployment", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
			{ID: "audit", Events: []spec.Event{spec.EventUpdate}},
			{ID: "warmup", Events: []spec.Event{spec.EventResume}},
		}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return deploymentReplicas(t, ns, "example", 1) })
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "revertrs") })

	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 10*time.Second, func() error { return deploymentReplicas(t, ns, "example", 2) })
	eventually(t, 10*time.Second, func() error { return called(h, "audit", 2) }) // failing, retried
	stop()

	startGateway(t, op)
	eventually(t, 10*time.Second, func() error {
		if n := len(eventCalls(h, "warmup", spec.EventResume)); n < 1 {
			return fmt.Errorf("resume not called yet")
		}
		return nil
	})
	updateWidget(t, ns, "example", setSize(1))
	time.Sleep(time.Second)
	resumeDown.Store(false)
	eventually(t, 15*time.Second, func() error {
		if err := deploymentReplicas(t, ns, "example", 1); err != nil {
			return fmt.Errorf("spec.size is back at 1, resize called with sizes %v, warmup called %d times: %w",
				sizes(h, "resize"), len(eventCalls(h, "warmup", spec.EventResume)), err)
		}
		return nil
	})
}

// resize refuses size 2 (422: permanent) and so never acts on it; audit
// fails at 2 (temporary), keeping the round open. The user takes the change
// back (size 1). contract.md: "those that acted on the taken-back change
// are called with the essence now, the others owe nothing". resize did not
// act on 2: it must not be told "2 → 1".
func TestACallbackThatFailedPermanentlyOnATakenBackChangeOwesNothing(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Callback {
		case "create-deployment":
			return 200, map[string]any{"children": []any{deployment("example", sizeOf(req))}}
		case "resize":
			if sizeOf(req) == 2 {
				return 422, map[string]any{"error": map[string]any{"message": "size 2 not allowed"}}
			}
			return 200, map[string]any{"children": []any{deployment("example", sizeOf(req))}}
		case "audit":
			if sizeOf(req) == 2 {
				return 200, map[string]any{"error": map[string]any{"message": "audit log unavailable"}}
			}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "revertpf", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Callbacks = []spec.Callback{
			{ID: "create-deployment", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
			{ID: "audit", Events: []spec.Event{spec.EventUpdate}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "revertpf") })
	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 10*time.Second, func() error { return called(h, "resize", 1) })
	eventually(t, 10*time.Second, func() error { return called(h, "audit", 2) })
	updateWidget(t, ns, "example", setSize(1))
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "revertpf") })
	time.Sleep(time.Second)
	for _, r := range h.calls("resize") {
		if sizeOf(r) == 1 {
			var old int64
			if r.Old != nil {
				old, _, _ = unstructured.NestedInt64(r.Old.Object, "spec", "size")
			}
			t.Errorf("resize, which failed permanently at size 2 and never acted on it, was called for size 1 with old size %d, diff %+v", old, r.Diff)
		}
	}
}

// resize fails permanently at size 2 (422) while audit keeps failing at 2,
// keeping the update round open. The gateway restarts. contract.md: "A
// permanent failure stops calls of that callback for that event until the
// object's essence ... changes. A gateway restart does not end it".
func TestARestartDuringAnOpenUpdateRoundDoesNotEndAPermanentFailure(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Callback {
		case "resize":
			if sizeOf(req) == 2 {
				return 422, map[string]any{"error": map[string]any{"message": "size 2 not allowed"}}
			}
		case "audit":
			if sizeOf(req) == 2 {
				return 200, map[string]any{"error": map[string]any{"message": "audit log unavailable"}}
			}
		}
		return 200, nil
	})
	op := operatorFor(t, "permrs", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Retry.MaxDelay = &spec.Duration{Duration: time.Second}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
			{ID: "audit", Events: []spec.Event{spec.EventUpdate}},
			{ID: "warmup", Events: []spec.Event{spec.EventResume}},
		}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "permrs") })
	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 10*time.Second, func() error { return called(h, "resize", 1) })
	eventually(t, 10*time.Second, func() error { return called(h, "audit", 2) })
	stop()
	before := len(h.calls("resize"))
	startGateway(t, op)
	eventually(t, 10*time.Second, func() error { return called(h, "warmup", 1) })
	time.Sleep(3 * time.Second)
	if n := len(h.calls("resize")) - before; n > 0 {
		t.Errorf("resize, failed permanently at size 2, called %d more times at the same essence after the restart (sizes %v)", n, sizes(h, "resize"))
	}
}
