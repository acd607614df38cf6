package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// Every resync answers the same child: it is applied once, not on every
// sync; but a child someone else changed or deleted is applied again.
func TestResyncDoesNotReapplyAnUnchangedChildButRepairsAChangedOne(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		return 200, map[string]any{"children": []any{deployment(req.Object.GetName(), 1)}}
	})
	_, reg := startGatewayWithMetrics(t, operatorFor(t, "reapply", ns, h.URL, func(s *spec.OperatorSpec) {
		s.ResyncPeriod = &spec.Duration{Duration: time.Second}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
		}
	}))
	createWidget(t, ns, "child", 1)
	childWrites := func() float64 {
		return counter(t, reg, "opgate_apply_total", map[string]string{"operator": "reapply", "action": "child", "result": "success"})
	}
	eventually(t, 30*time.Second, func() error {
		if n := len(h.calls("sync")); n < 4 {
			return fmt.Errorf("%d sync calls so far, want 4", n)
		}
		return nil
	})
	// The create's apply, and at most one more while the cache caught up
	// with it; never one per sync.
	if n := childWrites(); n > 2 {
		t.Errorf("%v child applies after %d syncs answering the same child, want at most 2", n, len(h.calls("sync")))
	}

	deployments := kube(t).AppsV1().Deployments(ns)
	d, err := deployments.Get(context.Background(), "child", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Replicas = ptrTo(int32(5))
	if _, err := deployments.Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		d, err := deployments.Get(context.Background(), "child", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 1 {
			return fmt.Errorf("replicas = %d, want the handler's 1 back", *d.Spec.Replicas)
		}
		return nil
	})

	if err := deployments.Delete(context.Background(), "child", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		d, err := deployments.Get(context.Background(), "child", metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err == nil && d.DeletionTimestamp != nil {
			return fmt.Errorf("child not re-created yet")
		}
		return err
	})
}

func ptrTo[T any](v T) *T { return &v }
