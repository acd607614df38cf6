package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

// failDeletePermanently is a handler whose delete callbacks fail for good
// ("backup bucket gone") and whose other callbacks answer answer.
func failDeletePermanently(answer map[string]any) func(callbacks.Request) (int, any) {
	return func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventDelete {
			return 200, map[string]any{"error": map[string]any{"message": "backup bucket gone", "permanent": true}}
		}
		if answer == nil {
			return 200, nil
		}
		return 200, answer
	}
}

func TestPermanentDeleteFailureKeepsFinalizerUntilReleaseAnnotation(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, failDeletePermanently(nil))
	startGateway(t, operatorFor(t, "stuck", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "cleanup", Events: []spec.Event{spec.EventDelete}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil || !hasFinalizer(w, "opgate.dev/stuck") {
			return fmt.Errorf("no finalizer yet (err %v)", err)
		}
		return nil
	})
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		for _, e := range events(t, ns, "example") {
			if e.Type == "Warning" && e.Reason == "HandlerError" && strings.Contains(e.Message, "opgate.dev/release-finalizer") {
				return nil
			}
		}
		return fmt.Errorf("no Warning event telling how to release the finalizer")
	})
	eventually(t, 10*time.Second, func() error { return stateSettled(t, ns, "example", "stuck") })
	w, err := getWidget(t, ns, "example")
	if err != nil || !hasFinalizer(w, "opgate.dev/stuck") {
		t.Fatalf("widget gone or finalizer released after a permanent delete failure (err %v): nothing may be lost", err)
	}
	if n := len(h.calls("cleanup")); n != 1 {
		t.Errorf("cleanup called %d times, want once: permanent failures are not retried", n)
	}
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		w.SetAnnotations(map[string]string{"opgate.dev/release-finalizer": "true"})
	})
	waitWidgetGone(t, ns, "example")
}

func TestLabelSelectorAndRemovedDeleteCallbackAreHonouredLive(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	startGateway(t)
	doc := func(callbacksYAML string) string {
		return fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: selective}
spec:
  watch:
    apiVersion: test.opgate.dev/v1
    kind: Widget
    namespaces: [%s]
    labelSelector: {matchLabels: {managed: "yes"}}
  handler: {url: %q}
  callbacks: %s
`, ns, h.URL, callbacksYAML)
	}
	createOperatorObject(t, doc(`[{id: create, events: [create]}, {id: cleanup, events: [delete]}]`))
	managed := widget(ns, "managed", 1)
	managed.SetLabels(map[string]string{"managed": "yes"})
	if _, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), managed, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createWidget(t, ns, "ignored", 1)
	eventually(t, 20*time.Second, func() error {
		w, err := getWidget(t, ns, "managed")
		if err != nil || !hasFinalizer(w, "opgate.dev/selective") {
			return fmt.Errorf("managed widget has no finalizer yet (err %v)", err)
		}
		return called(h, "create", 1)
	})
	if ignored, _ := getWidget(t, ns, "ignored"); len(ignored.GetFinalizers()) != 0 || ignored.GetAnnotations()["opgate.dev/state.selective"] != "" {
		t.Errorf("an object outside the label selector was touched: %v %v", ignored.GetFinalizers(), ignored.GetAnnotations())
	}

	// Drop the delete callback: the operator restarts with the new spec and
	// lets go of the finalizer it no longer needs.
	eventually(t, 10*time.Second, func() error {
		cur, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), "selective", metav1.GetOptions{})
		if err != nil {
			return err
		}
		next := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc(`[{id: create, events: [create]}]`)), &next.Object); err != nil {
			return err
		}
		cur.Object["spec"] = next.Object["spec"]
		_, err = dyn(t).Resource(engine.OperatorResource).Update(context.Background(), cur, metav1.UpdateOptions{})
		return err
	})
	eventually(t, 20*time.Second, func() error {
		w, err := getWidget(t, ns, "managed")
		if err != nil {
			return err
		}
		if hasFinalizer(w, "opgate.dev/selective") {
			return fmt.Errorf("finalizer still held after the delete callback was removed")
		}
		return nil
	})
	for _, r := range h.calls("create") {
		if r.Object.GetName() == "ignored" {
			t.Errorf("create called for a widget outside the label selector")
		}
	}
}
