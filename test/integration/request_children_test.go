package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientfeatures "k8s.io/client-go/features"
	clientfeaturestesting "k8s.io/client-go/features/testing"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

var (
	deploymentsGVR   = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	plainWidgetsGVR  = schema.GroupVersionResource{Group: "test.opgate.dev", Version: "v1", Resource: "plainwidgets"}
	deploymentKey    = "apps/v1/Deployment"
	plainWidgetKey   = "test.opgate.dev/v1/PlainWidget"
	childrenCompared = map[string]schema.GroupVersionResource{deploymentKey: deploymentsGVR, plainWidgetKey: plainWidgetsGVR}
)

// The children a sync and a delete request carry are the API server's
// objects less managedFields, field for field: for a built-in and a custom
// kind, cached from watch events and from the initial list of a gateway
// that starts when they exist, by a streaming watch-list and by a list
// (whose items of a built-in kind come without apiVersion and kind).
// Without a sync callback, nothing decodes the cached children before a
// delete request carries them: they go as the JSON the API server sent.
func TestRequestsCarryChildrenAsTheAPIServerHasThem(t *testing.T) {
	t.Run("watch-list", requestsCarryChildrenAsTheAPIServerHasThem)
	t.Run("list then watch", func(t *testing.T) {
		clientfeaturestesting.SetFeatureDuringTest(t, clientfeatures.WatchListClient, false)
		requestsCarryChildrenAsTheAPIServerHasThem(t)
	})
	t.Run("delete without sync", deleteRequestCarriesChildrenAsTheAPIServerHasThem)
}

// childrenHandler answers create and sync with a Deployment and a
// PlainWidget child, delete with nothing.
func childrenHandler(t *testing.T) *handler {
	return newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.Event(spec.EventDelete) {
			return 200, map[string]any{}
		}
		name := req.Object.GetName()
		return 200, map[string]any{"children": []any{deployment(name, 2), map[string]any{
			"apiVersion": "test.opgate.dev/v1", "kind": "PlainWidget",
			"metadata": map[string]any{"name": name, "labels": map[string]any{"role": "child"}, "annotations": map[string]any{"note": "a \"quoted\" {value}"}},
			"spec":     map[string]any{"size": int64(7)},
		}}}
	})
}

func requestsCarryChildrenAsTheAPIServerHasThem(t *testing.T) {
	ns := newNamespace(t)
	h := childrenHandler(t)
	op := operatorFor(t, "whole", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = append(s.Children, spec.ChildSpec{APIVersion: "test.opgate.dev/v1", Kind: "PlainWidget"})
		s.ResyncPeriod = &spec.Duration{Duration: time.Second}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
			{ID: "delete", Events: []spec.Event{spec.EventDelete}},
		}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "w", 1)
	waitChildrenAsServerHas(t, h, "sync", ns, 0)

	// A gateway that starts now has the children from its initial list.
	stop()
	seen := len(h.calls("sync"))
	startGateway(t, op)
	waitChildrenAsServerHas(t, h, "sync", ns, seen)

	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "w", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "w")
	waitChildrenAsServerHas(t, h, "delete", ns, 0)
}

func deleteRequestCarriesChildrenAsTheAPIServerHasThem(t *testing.T) {
	ns := newNamespace(t)
	h := childrenHandler(t)
	op := operatorFor(t, "nosync", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = append(s.Children, spec.ChildSpec{APIVersion: "test.opgate.dev/v1", Kind: "PlainWidget"})
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "delete", Events: []spec.Event{spec.EventDelete}},
		}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "w", 1)
	eventually(t, 60*time.Second, func() error {
		for key, gvr := range childrenCompared {
			if _, err := dyn(t).Resource(gvr).Namespace(ns).Get(context.Background(), "w", metav1.GetOptions{}); err != nil {
				return fmt.Errorf("%s w: %w", key, err)
			}
		}
		return nil
	})
	// A gateway that starts now has the children in its cache, from its
	// initial list, before it handles the deletion.
	stop()
	startGateway(t, op)
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "w", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "w")
	waitChildrenAsServerHas(t, h, "delete", ns, 0)
}

// waitChildrenAsServerHas waits for a request of callback, after the
// first skip, whose children are the server's current objects: same
// resourceVersion, and then the same JSON.
func waitChildrenAsServerHas(t *testing.T, h *handler, callback, ns string, skip int) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		calls := h.calls(callback)
		if len(calls) <= skip {
			return fmt.Errorf("%d %s calls, waiting for one after %d", len(calls), callback, skip)
		}
		return childrenAsServerHas(t, calls[len(calls)-1], ns)
	})
}

func childrenAsServerHas(t *testing.T, req callbacks.Request, ns string) error {
	if len(req.Children) != len(childrenCompared) {
		return fmt.Errorf("%s request has children of kinds %v", req.Event, keys(req.Children))
	}
	for key, gvr := range childrenCompared {
		got := req.Children[key]["w"]
		if got == nil {
			return fmt.Errorf("%s request has no %s w: %v", req.Event, key, req.Children[key])
		}
		want, err := dyn(t).Resource(gvr).Namespace(ns).Get(context.Background(), "w", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.GetResourceVersion() != want.GetResourceVersion() {
			return fmt.Errorf("%s request's %s has resourceVersion %s, the server %s", req.Event, key, got.GetResourceVersion(), want.GetResourceVersion())
		}
		unstructured.RemoveNestedField(want.Object, "metadata", "managedFields")
		g, _ := json.Marshal(got.Object)
		w, _ := json.Marshal(want.Object)
		if string(g) != string(w) {
			t.Fatalf("%s request's %s differs from the API server's:\n got %s\nwant %s", req.Event, key, g, w)
		}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
