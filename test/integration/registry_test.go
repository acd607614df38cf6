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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// createOperatorObject registers a WebhookOperator in the cluster and
// deletes it when the test ends.
func createOperatorObject(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("test WebhookOperator: %v", err)
	}
	out, err := dyn(t).Resource(engine.OperatorResource).Create(context.Background(), obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create WebhookOperator: %v", err)
	}
	t.Cleanup(func() {
		_ = dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), out.GetName(), metav1.DeleteOptions{})
	})
	return out
}

// readyCondition returns the WebhookOperator's Ready condition as
// "status/reason: message".
func readyCondition(t *testing.T, name string) string {
	o, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return "get: " + err.Error()
	}
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		if m["type"] == spec.ConditionReady {
			return fmt.Sprintf("%v/%v: %v", m["status"], m["reason"], m["message"])
		}
	}
	return "no Ready condition"
}

// waitReady waits until the WebhookOperator's Ready condition reads
// "<status>/<reason>".
func waitReady(t *testing.T, name, statusReason string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if c := readyCondition(t, name); !strings.HasPrefix(c, statusReason) {
			return fmt.Errorf("Ready = %s, want %s", c, statusReason)
		}
		return nil
	})
}

func TestWebhookOperatorObjectStartsLiveAndDeletionReleasesFinalizers(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "handled"}}))
	startGateway(t) // no files: the registry of WebhookOperator objects
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: live}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  callbacks:
    - {id: create, events: [create]}
    - {id: cleanup, events: [delete]}
`, ns, h.URL))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "handled") })
	waitReady(t, "live", "True/Running")
	w, _ := getWidget(t, ns, "example")
	if !hasFinalizer(w, "opgate.dev/live") {
		t.Fatalf("finalizers = %v, want opgate.dev/live", w.GetFinalizers())
	}
	if err := dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), "live", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if _, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), "live", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("WebhookOperator still there (err %v)", err)
		}
		return nil
	})
	w, _ = getWidget(t, ns, "example")
	if hasFinalizer(w, "opgate.dev/live") {
		t.Errorf("finalizer opgate.dev/live still on the widget after its operator was deleted")
	}
	// The widget can now be deleted without any callback holding it.
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "example")
	if n := len(h.calls("cleanup")); n != 0 {
		t.Errorf("cleanup called %d times for an operator that no longer exists", n)
	}
}

func TestInvalidWebhookOperatorReportsErrorsAndStartsNothing(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	startGateway(t)
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: broken}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  callbacks:
    - {id: create, events: [create], interval: 1m}
    - {id: tick, events: [timer]}
`, ns, h.URL))
	eventually(t, 20*time.Second, func() error {
		c := readyCondition(t, "broken")
		if !strings.HasPrefix(c, "False/InvalidSpec") || !strings.Contains(c, "/spec/callbacks/0/interval") || !strings.Contains(c, "/spec/callbacks/1") {
			return fmt.Errorf("Ready = %s, want False/InvalidSpec naming the interval on a non-timer and the timer without one", c)
		}
		return nil
	})
	createWidget(t, ns, "example", 1)
	// The registry handled the broken operator (status above); a valid one
	// registered after it runs, proving the gateway is alive, while the
	// broken one never calls.
	h2 := newHandler(t, ok(nil))
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: witness}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, ns, h2.URL))
	eventually(t, 20*time.Second, func() error { return called(h2, "create", 1) })
	if n := len(h.requests); n != 0 {
		t.Errorf("the invalid operator's handler was called %d times", n)
	}
}

func TestOperatorWaitsForMissingKindAndStartsWhenCRDAppears(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "seen"}}))
	startGateway(t)
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: late}
spec:
  watch: {apiVersion: late.opgate.dev/v1, kind: Gadget, namespaces: [%s]}
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, ns, h.URL))
	waitReady(t, "late", "False/KindNotFound")
	crd := &unstructured.Unstructured{}
	_ = yaml.Unmarshal([]byte(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.late.opgate.dev}
spec:
  group: late.opgate.dev
  names: {kind: Gadget, plural: gadgets, singular: gadget, listKind: GadgetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
`), &crd.Object)
	if _, err := dyn(t).Resource(crdGVR).Create(context.Background(), crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gadgets := schema.GroupVersionResource{Group: "late.opgate.dev", Version: "v1", Resource: "gadgets"}
	eventually(t, 20*time.Second, func() error {
		g := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "late.opgate.dev/v1", "kind": "Gadget",
			"metadata": map[string]any{"name": "g1", "namespace": ns}}}
		_, err := dyn(t).Resource(gadgets).Namespace(ns).Create(context.Background(), g, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	eventually(t, 30*time.Second, func() error { return called(h, "create", 1) })
	waitReady(t, "late", "True/Running")
}

func TestManyObjectsInParallelStayWithinMaxInFlight(t *testing.T) {
	const objects, maxInFlight = 200, 8
	ns := newNamespace(t)
	var inFlight, peak atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond) // a handler doing some work
		return 200, map[string]any{"status": map[string]any{"message": "done " + req.Object.GetName()}}
	})
	startGateway(t, operatorFor(t, "many", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Concurrency = &spec.Concurrency{MaxInFlight: maxInFlight}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	for i := range objects {
		createWidget(t, ns, fmt.Sprintf("w%03d", i), 1)
	}
	eventually(t, 60*time.Second, func() error {
		list, err := dyn(t).Resource(widgets).Namespace(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		done := 0
		for _, w := range list.Items {
			if m, _, _ := unstructured.NestedString(w.Object, "status", "message"); m == "done "+w.GetName() {
				done++
			}
		}
		if done != objects {
			return fmt.Errorf("%d of %d widgets have their status", done, objects)
		}
		return nil
	})
	if p := peak.Load(); p > maxInFlight {
		t.Errorf("peak callbacks in flight = %d, want ≤ maxInFlight %d", p, maxInFlight)
	} else if p < 2 {
		t.Errorf("peak callbacks in flight = %d: objects were not handled in parallel", p)
	}
	if n := len(h.calls("create")); n != objects {
		t.Errorf("create called %d times for %d objects, want exactly one each", n, objects)
	}
}

// An operator started while the CRD of its kind is gone waits for it as for
// any missing kind, even though the gateway had resolved the kind before
// (here as another operator's related kind, whose CRD it does not watch):
// taken for a built-in kind, it would run without the CRD's checks for
// good. Once the CRD is back, without the status subresource, the
// operator's status.conditions is refused, as on any such CRD.
func TestOperatorStartedWhileItsCRDIsGoneWaitsForIt(t *testing.T) {
	crd := plainCRD(t, "stale.opgate.dev", "Washer")
	createCRD(t, crd)
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	startGateway(t)
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: washer-reader}
spec:
  watch: {apiVersion: v1, kind: ConfigMap, namespaces: [%s]}
  related: [{apiVersion: stale.opgate.dev/v1, kind: Washer}]
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, ns, h.URL))
	waitReady(t, "washer-reader", "True/Running")

	deleteCRD(t, crd.GetName())
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: washers}
spec:
  watch: {apiVersion: stale.opgate.dev/v1, kind: Washer, namespaces: [%s]}
  handler: {url: %q}
  status: {conditions: true}
  callbacks: [{id: create, events: [create]}]
`, ns, h.URL))
	waitReady(t, "washers", "False/KindNotFound")

	createCRD(t, crd)
	eventually(t, 60*time.Second, func() error {
		if c := readyCondition(t, "washers"); !strings.HasPrefix(c, "False/StatusSubresourceMissing") {
			return fmt.Errorf("Ready = %s, want False/StatusSubresourceMissing: the CRD back lacks the status subresource", c)
		}
		return nil
	})
}
