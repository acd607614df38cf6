package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// The gateway's caches drop metadata.managedFields (memory), so handlers
// never see it: not in object, not in children, whatever the pass wrote.
func TestHandlersNeverSeeManagedFields(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.Event(spec.EventDelete) {
			return 200, map[string]any{}
		}
		return 200, map[string]any{
			"status":   map[string]any{"message": "created"},
			"children": []any{deployment(req.Object.GetName(), 1)},
		}
	})
	startGateway(t, operatorFor(t, "nomf", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "delete", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	createWidget(t, ns, "mf", 1)
	eventually(t, 30*time.Second, func() error {
		got, err := getWidget(t, ns, "mf")
		if err != nil {
			return err
		}
		if msg, _, _ := unstructured.NestedString(got.Object, "status", "message"); msg != "created" {
			return fmt.Errorf("status.message = %q", msg)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error { return stateHandled(t, ns, "mf", "nomf") })
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "mf", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "mf")

	creates, deletes := h.calls("create"), h.calls("delete")
	if len(creates) == 0 || len(deletes) == 0 {
		t.Fatalf("calls: %d create, %d delete; want both called", len(creates), len(deletes))
	}
	for _, req := range append(creates, deletes...) {
		if mf := req.Object.GetManagedFields(); len(mf) > 0 {
			t.Errorf("%s request object has managedFields: %v", req.Event, mf)
		}
	}
	child := deletes[0].Children["apps/v1/Deployment"]["mf"]
	if child == nil {
		t.Fatalf("delete request children = %v, want the Deployment mf", deletes[0].Children)
	}
	if mf := child.GetManagedFields(); len(mf) > 0 {
		t.Errorf("delete request child has managedFields: %v", mf)
	}
}
