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

func TestChildOfUndeclaredKindOrOtherNamespaceIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name  string
		child func(ns string) map[string]any
	}{
		{"undeclared kind", func(string) map[string]any {
			return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "sneaky"}}
		}},
		{"other namespace", func(string) map[string]any {
			d := deployment("sneaky", 1)
			d["metadata"].(map[string]any)["namespace"] = "default"
			return d
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				return 200, map[string]any{
					"status":   map[string]any{"message": "must not be applied"},
					"children": []any{deployment("legit", 1), tt.child(ns)},
				}
			})
			startGateway(t, operatorFor(t, "refuse", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
			}))
			createWidget(t, ns, "example", 1)
			eventually(t, 10*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "ChildRefused") })
			for _, d := range []struct{ ns, name string }{{ns, "legit"}, {ns, "sneaky"}, {"default", "sneaky"}} {
				if _, err := kube(t).AppsV1().Deployments(d.ns).Get(context.Background(), d.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					t.Errorf("deployment %s/%s exists (err %v): nothing of a refused response may be applied", d.ns, d.name, err)
				}
			}
			if _, err := kube(t).CoreV1().ConfigMaps(ns).Get(context.Background(), "sneaky", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("configmap sneaky exists (err %v)", err)
			}
			if err := statusMessage(t, ns, "example", ""); err != nil {
				t.Errorf("status of a refused response applied: %v", err)
			}
			if n := len(h.calls("create")); n != 1 {
				t.Errorf("create called %d times, want once: a refused child is a permanent error", n)
			}
		})
	}
}

func TestSyncPrunesOnlyWhenChildrenKeyIsPresent(t *testing.T) {
	ns := newNamespace(t)
	var prune atomic.Bool
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Event {
		case callbacks.EventCreate:
			return 200, map[string]any{"children": []any{deployment("a", 1), deployment("b", 1)}}
		case callbacks.EventSync:
			if prune.Load() {
				return 200, map[string]any{"children": []any{}}
			}
			return 200, map[string]any{"status": map[string]any{"message": fmt.Sprintf("sees %d", len(req.Children["apps/v1/Deployment"]))}}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "pruner", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
			{ID: "poke", Events: []spec.Event{spec.EventUpdate}},
		}
	}))
	createWidget(t, ns, "example", 1)
	// Without the key, sync prunes nothing and sees both children.
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "example", "sees 2") })
	if n := countDeployments(t, ns); n != 2 {
		t.Fatalf("%d deployments after a sync without children, want 2", n)
	}
	prune.Store(true)
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) { w.SetLabels(map[string]string{"poke": "1"}) })
	eventually(t, 10*time.Second, func() error {
		if n := countDeployments(t, ns); n != 0 {
			return fmt.Errorf("%d deployments left, want 0 after children: []", n)
		}
		return nil
	})
}

func countDeployments(t *testing.T, ns string) int {
	list, err := kube(t).AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range list.Items {
		if d.DeletionTimestamp == nil {
			n++
		}
	}
	return n
}

func TestStatusFieldOutsideSchemaIsReportedInWarningEvent(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "kept", "nodez": []any{"typo"}}}))
	startGateway(t, operatorFor(t, "schema", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "example", "kept") })
	eventually(t, 10*time.Second, func() error {
		for _, e := range events(t, ns, "example") {
			if e.Reason == "StatusFieldsPruned" && e.Type == "Warning" && strings.Contains(e.Message, "status.nodez") {
				return nil
			}
		}
		return fmt.Errorf("no Warning StatusFieldsPruned event naming status.nodez")
	})
}
