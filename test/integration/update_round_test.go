package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

func sizes(h *handler, callback string) []int64 {
	var out []int64
	for _, r := range h.calls(callback) {
		out = append(out, sizeOf(r))
	}
	return out
}

func deploymentReplicas(t *testing.T, ns, name string, want int32) error {
	d, err := kube(t).AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != want {
		got := "no"
		if d.Spec.Replicas != nil {
			got = fmt.Sprint(*d.Spec.Replicas)
		}
		return fmt.Errorf("deployment %s has %s replicas, want %d", name, got, want)
	}
	return nil
}

// resize (update, when.fields spec.size) scales the Deployment 1 → 2 and
// succeeds while a second update callback still fails (temporarily). The
// user scales back to 1, the handled essence: resize, which acted on 2,
// must hear of 1, or the Deployment keeps 2 replicas for good.
func TestAChangeTakenBackWhileASiblingRetriesReachesTheCallbackThatActedOnIt(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Callback {
		case "create-deployment", "resize":
			return 200, map[string]any{"children": []any{deployment("example", sizeOf(req))}}
		case "audit":
			if sizeOf(req) == 2 {
				return 200, map[string]any{"error": map[string]any{"message": "audit log unavailable"}}
			}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "revert", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Callbacks = []spec.Callback{
			{ID: "create-deployment", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
			{ID: "audit", Events: []spec.Event{spec.EventUpdate}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return deploymentReplicas(t, ns, "example", 1) })
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "revert") })

	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 10*time.Second, func() error { return deploymentReplicas(t, ns, "example", 2) })
	eventually(t, 10*time.Second, func() error { return called(h, "audit", 2) }) // failing, retried

	updateWidget(t, ns, "example", setSize(1))
	eventually(t, 10*time.Second, func() error {
		if err := deploymentReplicas(t, ns, "example", 1); err != nil {
			return fmt.Errorf("spec.size is back at 1, resize called with sizes %v: %w", sizes(h, "resize"), err)
		}
		return nil
	})
}

// A failing update whose change is taken back (the essence is the handled
// one again) owes nothing: the object's Reconciled condition comes back to
// True rather than reporting the taken-back change's failure for good.
func TestATakenBackChangeLeavesNoFailureBehind(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "audit" && sizeOf(req) == 2 {
			return 200, map[string]any{"error": map[string]any{"message": "audit log unavailable"}}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "takeback", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "audit", Events: []spec.Event{spec.EventUpdate}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, reconciled(t, ns, "example", "True", ""))
	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 10*time.Second, func() error { return called(h, "audit", 2) })
	updateWidget(t, ns, "example", setSize(1))
	eventually(t, 15*time.Second, reconciled(t, ns, "example", "True", ""))
}
