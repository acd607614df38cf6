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

func TestCreateAppliesChildWithOwnerAndMergesStatus(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		size, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size")
		return 200, map[string]any{
			"status":   map[string]any{"message": fmt.Sprintf("created %d", size)},
			"children": []any{deployment(req.Object.GetName(), size)},
			"events":   []any{map[string]any{"type": "Normal", "reason": "Created", "message": "deployment created"}},
		}
	})
	startGateway(t, operatorFor(t, "create", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}, Path: "/create"}}
	}))
	w := createWidget(t, ns, "example", 3)

	eventually(t, 20*time.Second, func() error {
		d, err := kube(t).AppsV1().Deployments(ns).Get(context.Background(), "example", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 3 {
			return fmt.Errorf("replicas = %d, want 3", *d.Spec.Replicas)
		}
		ref := metav1.GetControllerOf(d)
		if ref == nil || ref.UID != w.GetUID() || ref.Kind != "Widget" {
			return fmt.Errorf("controller ref = %+v, want the widget", ref)
		}
		if d.Labels["opgate.dev/operator"] != "create" {
			return fmt.Errorf("labels = %v, want opgate.dev/operator=create", d.Labels)
		}
		return nil
	})
	eventually(t, 10*time.Second, func() error {
		got, err := getWidget(t, ns, "example")
		if err != nil {
			return err
		}
		if msg, _, _ := unstructured.NestedString(got.Object, "status", "message"); msg != "created 3" {
			return fmt.Errorf("status.message = %q, want %q", msg, "created 3")
		}
		return nil
	})
	eventually(t, 10*time.Second, func() error { return hasEvent(t, ns, "example", "Normal", "Created") })

	calls := h.calls("create")
	if len(calls) != 1 {
		t.Fatalf("create called %d times, want exactly once", len(calls))
	}
	if calls[0].Event != callbacks.EventCreate || calls[0].Attempt != 1 || calls[0].UID == "" {
		t.Errorf("request = event %q attempt %d uid %q, want create, 1, non-empty", calls[0].Event, calls[0].Attempt, calls[0].UID)
	}
	got, _ := getWidget(t, ns, "example")
	if len(got.GetFinalizers()) != 0 {
		t.Errorf("finalizers = %v, want none: the operator has no delete callback", got.GetFinalizers())
	}
}
