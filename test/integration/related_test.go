package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// operatorLastError returns a WebhookOperator's status.lastError.
func operatorLastError(t *testing.T, name string) string {
	o, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return "get: " + err.Error()
	}
	s, _, _ := unstructured.NestedString(o.Object, "status", "lastError")
	return s
}

func TestRelatedSelectorErrorBlocksNeitherCreateNorDelete(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	startGateway(t) // registry mode: the error must reach the WebhookOperator status
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: relsel}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  related:
    - apiVersion: v1
      kind: ConfigMap
      labelSelector: {matchLabels: {app: "{{ .spec.image }}"}}
  handler: {url: %q}
  retry: {initialDelay: 100ms, maxDelay: 2s, jitter: 0}
  callbacks:
    - {id: create, events: [create]}
    - {id: sync, events: [sync]}
    - {id: cleanup, events: [delete]}
`, ns, h.URL))
	w := widget(ns, "example", 1)
	_ = unstructured.SetNestedField(w.Object, "app1", "spec", "image")
	if _, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })

	// Without spec.image the selector's template cannot be rendered.
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		unstructured.RemoveNestedField(w.Object, "spec", "image")
	})
	eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "RelatedSelectorInvalid") })
	eventually(t, 30*time.Second, func() error {
		if e := operatorLastError(t, "relsel"); !strings.Contains(e, `no entry for key "image"`) {
			return fmt.Errorf("WebhookOperator lastError = %q, want the selector's template error", e)
		}
		return nil
	})

	// An object the selector never rendered for is still created.
	createWidget(t, ns, "fresh", 1)
	eventually(t, 20*time.Second, func() error { return calledForName(h, "create", "fresh") })

	for _, name := range []string{"example", "fresh"} {
		if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"example", "fresh"} {
		eventually(t, 20*time.Second, func() error { return calledForName(h, "cleanup", name) })
		waitWidgetGone(t, ns, name)
	}
	for _, req := range h.calls("cleanup") {
		if _, ok := req.Related["v1/ConfigMap"]; ok {
			t.Errorf("delete of %s carried related ConfigMaps its selector could not select", req.Object.GetName())
		}
	}
	for _, req := range h.calls("sync") {
		if _, ok, _ := unstructured.NestedString(req.Object.Object, "spec", "image"); !ok {
			t.Errorf("sync of %s was called without its related objects", req.Object.GetName())
		}
	}
}

// calledForName reports whether a callback was called for the named object.
func calledForName(h *handler, callback, name string) error {
	for _, req := range h.calls(callback) {
		if req.Object != nil && req.Object.GetName() == name {
			return nil
		}
	}
	return fmt.Errorf("%s not called for %s yet", callback, name)
}

// A related selector that cannot be rendered holds sync back until the
// object or the selector changes; it is not the handler failing, so
// maxAttempts never turns it permanent: once a status change makes the
// selector render, sync runs without any change to the essence.
func TestRelatedSelectorErrorNeverTurnsSyncPermanent(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	two := 2
	startGateway(t, operatorFor(t, "relperm", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = nil
		s.Related = []spec.RelatedSpec{{APIVersion: "v1", Kind: "ConfigMap",
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "{{ .status.message }}"}}}}
		s.Retry = &spec.RetrySpec{InitialDelay: &spec.Duration{Duration: 50 * time.Millisecond},
			MaxDelay: &spec.Duration{Duration: 200 * time.Millisecond}, MaxAttempts: &two}
		s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
	}))
	createWidget(t, ns, "example", 1)
	// Past maxAttempts while the selector cannot render.
	eventually(t, 20*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil {
			return err
		}
		st, err := state.Decode(w.GetAnnotations()["opgate.dev/state.relperm"])
		if err != nil {
			return err
		}
		pr := st.Progress["sync"]
		switch {
		case pr == nil:
			return fmt.Errorf("sync not deferred yet")
		case pr.Failed:
			return fmt.Errorf("sync failed permanently after %d attempts: %s", pr.Attempts, pr.Message)
		case pr.Attempts < 3:
			return fmt.Errorf("sync deferred %d times, want past maxAttempts (2)", pr.Attempts)
		}
		return nil
	})
	if n := len(h.calls("sync")); n != 0 {
		t.Fatalf("sync called %d times while its related objects could not be gathered", n)
	}
	w, err := getWidget(t, ns, "example")
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(w.Object, "app1", "status", "message")
	if _, err := dyn(t).Resource(widgets).Namespace(ns).UpdateStatus(context.Background(), w, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })
}
