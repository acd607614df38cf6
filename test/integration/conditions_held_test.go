package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/metrics/metricstest"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// A status held for the end of the pass that cannot be written fails the
// callback that answered it, as the same delivery, so it is called again
// and its status lands once the API server lets the gateway write it;
// Reconciled is never True without it. Also when the state annotation
// cannot be written either (as with the API server down), where the state
// the gateway remembers must not say handled.
func TestHeldStatusTheServerRefusesIsRetriedUntilItLands(t *testing.T) {
	all := []string{"*"}
	read := []string{"get", "list", "watch"}
	for _, tc := range []struct {
		name  string
		first rbacv1.PolicyRule // granted fully later
		rest  []rbacv1.PolicyRule
	}{
		{"status refused", rbacv1.PolicyRule{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets/status"}, Verbs: []string{"get"}},
			[]rbacv1.PolicyRule{{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets"}, Verbs: all}}},
		{"status and state refused", rbacv1.PolicyRule{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets", "widgets/status"}, Verbs: read}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "ready"}}))
			op := operatorFor(t, "heldstatus", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Status = &spec.StatusSpec{Conditions: true}
				s.Children = nil
				s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
				s.Retry = fastRetry(200 * time.Millisecond)
			})
			rules := append([]rbacv1.PolicyRule{tc.first}, tc.rest...)
			rules = append(rules,
				rbacv1.PolicyRule{APIGroups: []string{"", "apps", spec.Group, "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
				rbacv1.PolicyRule{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: read})
			c, grant := impersonatedConfig(t, "opgate-nostatus", rules, 0)
			runGateway(t, c, runner.Options{Operators: []*spec.WebhookOperator{op}})
			w := createWidget(t, ns, "example", 1)

			eventually(t, 30*time.Second, func() error { return calledFor(h, "create", w.GetUID(), 2) })
			calls := h.calls("create")[:2]
			for i, req := range calls {
				if req.UID != calls[0].UID || req.Attempt != i+1 {
					t.Fatalf("call %d: delivery %s attempt %d, want the same delivery, attempt %d (all: %s)",
						i+1, req.UID, req.Attempt, i+1, deliveries(calls))
				}
			}
			if err := reconciled(t, ns, "example", "True", "")(); err == nil {
				t.Fatal("Reconciled is True while the handler's status was never written")
			}
			grant()
			eventually(t, 60*time.Second, func() error { return statusMessage(t, ns, "example", "ready") })
			eventually(t, 30*time.Second, reconciled(t, ns, "example", "True", ""))
		})
	}
}

// A handler request whose held status the API server refuses counts once,
// as a temporary failure: not also as a success, and with no
// event-to-callback sample, since nothing of its answer stands. Once the
// status can be written, the request that lands it is the one success.
func TestARefusedHeldStatusCountsTheRequestOnceAndNotAsSuccess(t *testing.T) {
	all := []string{"*"}
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "ready"}}))
	op := operatorFor(t, "heldcount", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
		s.Retry = fastRetry(200 * time.Millisecond)
	})
	c, grant := impersonatedConfig(t, "opgate-nostatus", []rbacv1.PolicyRule{
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets/status"}, Verbs: []string{"get"}}, // granted fully later
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets"}, Verbs: all},
		{APIGroups: []string{"", "apps", spec.Group, "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	}, 0)
	reg := prometheus.NewRegistry()
	runGateway(t, c, runner.Options{Operators: []*spec.WebhookOperator{op}, Registerer: reg})
	w := createWidget(t, ns, "example", 1)
	outcome := func(o string) float64 {
		return counter(t, reg, "opgate_callback_requests_total", map[string]string{"operator": "heldcount", "outcome": o})
	}
	latency := func() float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "opgate_event_to_callback_seconds" {
				v, _ := metricstest.Value(f, map[string]string{"operator": "heldcount"})
				return v
			}
		}
		return 0
	}

	eventually(t, 30*time.Second, func() error {
		if err := calledFor(h, "create", w.GetUID(), 2); err != nil {
			return err
		}
		if n := outcome("temporary"); n < 2 {
			return fmt.Errorf("%v requests counted temporary, want 2 or more", n)
		}
		return nil
	})
	if s, l := outcome("success"), latency(); s != 0 || l != 0 {
		t.Errorf("with the status refused: %v requests counted as success, %v event-to-callback samples; want none", s, l)
	}
	grant()
	eventually(t, 60*time.Second, func() error { return statusMessage(t, ns, "example", "ready") })
	eventually(t, 30*time.Second, func() error {
		if s, l := outcome("success"), latency(); s != 1 || l != 1 {
			return fmt.Errorf("once the status landed: %v requests counted as success, %v event-to-callback samples; want 1 and 1", s, l)
		}
		return nil
	})
	calls := len(h.calls("create"))
	if n := outcome("success") + outcome("temporary") + outcome("permanent"); n != float64(calls) {
		t.Errorf("%v outcomes counted for %d handler requests, want one each", n, calls)
	}
}

// The Events of an answer whose held status the API server refuses are
// not recorded with it: its call is made again, and each retry's Events
// would pile up on the object ("Created" counted once per attempt for one
// change). They are recorded once, with the answer whose status lands.
func TestEventsOfAnAnswerWhoseHeldStatusIsRefusedAreRecordedOnce(t *testing.T) {
	all := []string{"*"}
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{
		"status": map[string]any{"message": "ready"},
		"events": []any{map[string]any{"type": "Normal", "reason": "Created", "message": "widget made"}},
	}))
	op := operatorFor(t, "heldevents", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
		s.Retry = fastRetry(200 * time.Millisecond)
	})
	c, grant := impersonatedConfig(t, "opgate-heldevents", []rbacv1.PolicyRule{
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets/status"}, Verbs: []string{"get"}}, // granted fully later
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets"}, Verbs: all},
		{APIGroups: []string{"", "apps", spec.Group, "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	}, 0)
	runGateway(t, c, runner.Options{Operators: []*spec.WebhookOperator{op}})
	w := createWidget(t, ns, "example", 1)
	created := func() (n int32) {
		for _, e := range events(t, ns, "example") {
			if e.Source.Component == "opgate-handler" && e.Reason == "Created" {
				n += max(e.Count, 1)
			}
		}
		return n
	}

	// The gateway's own Warning of the failure is recorded after the
	// first answer's Events would have been, by the same broadcaster.
	eventually(t, 30*time.Second, func() error { return calledFor(h, "create", w.GetUID(), 2) })
	eventually(t, 30*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "ApplyForbidden") })
	if n := created(); n != 0 {
		t.Errorf("with the status refused: the handler's Event Created counted %d times, want none (its answer is not applied)", n)
	}
	grant()
	eventually(t, 60*time.Second, func() error { return statusMessage(t, ns, "example", "ready") })
	eventually(t, 30*time.Second, func() error {
		if n := created(); n == 0 {
			return fmt.Errorf("the handler's Event Created not recorded yet")
		}
		return nil
	})
	if n, calls := created(), len(h.calls("create")); n != 1 {
		t.Errorf("the handler's Event Created counted %d times for one change (%d calls): want once", n, calls)
	}
}

// Conditions a handler answers replace the list (a merge patch replaces
// arrays), yet the gateway's Reconciled keeps its lastTransitionTime from
// the object, and a sync answering the same again writes nothing.
func TestHandlerConditionsKeepReconciledTransitionTime(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"conditions": []any{map[string]any{
		"type": "Available", "status": "True", "reason": "Up", "message": "serving",
		"lastTransitionTime": "2026-01-01T00:00:00Z"}}}}))
	startGateway(t, operatorFor(t, "ownconds", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Children = nil
		s.ResyncPeriod = &spec.Duration{Duration: time.Second}
		s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, reconciled(t, ns, "example", "True", ""))
	eventually(t, 30*time.Second, func() error { return called(h, "sync", 1) })
	eventually(t, 30*time.Second, func() error {
		if c := conditionTimes(t, ns, "example", false); !strings.Contains(c, "Available=") {
			return fmt.Errorf("conditions %s: the handler's not written yet", c)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error { return stateHandled(t, ns, "example", "ownconds") }) // written after status
	before := conditionTimes(t, ns, "example", true)
	syncs := len(h.calls("sync"))
	if n := writesWhileIdle(t, ns, "example", 5*time.Second); n != 0 {
		t.Errorf("%d status writes while syncs answered the same conditions", n)
	}
	if n := len(h.calls("sync")) - syncs; n < 2 {
		t.Fatalf("sync called %d times in the window, want at least 2 (resync 1s)", n)
	}
	if after := conditionTimes(t, ns, "example", true); after != before {
		t.Errorf("conditions changed across syncs: %s, before %s", after, before)
	}
}

// Reconciled removed from an object by someone else (kubectl, a tool) is
// written back with the lastTransitionTime it had: its status did not
// change, and the gateway still knows when it last did.
func TestReconciledRemovedByAnotherWriterComesBackWithItsTransitionTime(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "ready"}}))
	startGateway(t, operatorFor(t, "comeback", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, reconciled(t, ns, "example", "True", ""))
	before := conditionTimes(t, ns, "example", false)
	since, err := time.Parse(time.RFC3339, strings.TrimSuffix(strings.TrimPrefix(before, "Reconciled="), " "))
	if err != nil {
		t.Fatalf("conditions %s: %v", before, err)
	}
	// Removed in a later second, a new lastTransitionTime would show.
	eventually(t, 5*time.Second, func() error {
		if now := time.Now().Truncate(time.Second); !now.After(since) {
			return fmt.Errorf("still %s, the second Reconciled was written in", now)
		}
		return nil
	})
	if _, err := dyn(t).Resource(widgets).Namespace(ns).Patch(context.Background(), "example", types.MergePatchType,
		[]byte(`{"status":{"conditions":null}}`), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, reconciled(t, ns, "example", "True", ""))
	if after := conditionTimes(t, ns, "example", false); after != before {
		t.Errorf("Reconciled came back as %s, before it was removed %s", after, before)
	}
}

// conditionTimes lists a widget's conditions as type=lastTransitionTime.
// With both, it checks they are the handler's and the gateway's.
func conditionTimes(t *testing.T, ns, name string, both bool) string {
	t.Helper()
	w, err := getWidget(t, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	conds, _, _ := unstructured.NestedSlice(w.Object, "status", "conditions")
	out := ""
	for _, c := range conds {
		m, _ := c.(map[string]any)
		out += fmt.Sprintf("%v=%v ", m["type"], m["lastTransitionTime"])
	}
	if both && len(conds) != 2 {
		t.Errorf("conditions %s: want the handler's condition and the gateway's Reconciled", out)
	}
	return out
}

var plainWidgets = schema.GroupVersionResource{Group: "test.opgate.dev", Version: "v1", Resource: "plainwidgets"}

// A kind without the status subresource counts every status change in
// metadata.generation: status.conditions there would chase its own
// observedGeneration forever. The operator is refused (Ready=False naming
// the CRD) and writes nothing.
func TestConditionsOnAKindWithoutStatusSubresourceAreRefused(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "ready"}}))
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.opgate.dev/v1", "kind": "PlainWidget",
		"metadata": map[string]any{"name": "example", "namespace": ns}, "spec": map[string]any{"size": int64(1)}}}
	res := dyn(t).Resource(plainWidgets).Namespace(ns)
	created, err := res.Create(context.Background(), obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create PlainWidget: %v", err)
	}
	startGateway(t)
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: plainconds}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: PlainWidget, namespaces: [%s]}
  handler: {url: %q}
  status: {conditions: true}
  callbacks: [{id: create, events: [create]}]
`, ns, h.URL))
	waitReady(t, "plainconds", "False/StatusSubresourceMissing")
	if c := readyCondition(t, "plainconds"); !strings.Contains(c, "plainwidgets.test.opgate.dev") || !strings.Contains(c, "subresources") {
		t.Errorf("Ready = %s: want the CRD named and the subresource to add", c)
	}
	n := modifiedWithin(t, "PlainWidget", 5*time.Second, func(ctx context.Context) (watch.Interface, error) {
		return res.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=example", ResourceVersion: created.GetResourceVersion()})
	})
	if n != 0 || len(h.calls("create")) != 0 {
		t.Errorf("%d writes to the object and %d calls: want none while refused", n, len(h.calls("create")))
	}

	// The CRD gains the subresource: the operator runs, the object is
	// handled and its status written once.
	setStatusSubresource(t, true)
	t.Cleanup(func() { setStatusSubresource(t, false) })
	waitReady(t, "plainconds", "True")
	eventually(t, 30*time.Second, func() error {
		o, err := res.Get(context.Background(), "example", metav1.GetOptions{})
		if err != nil {
			return err
		}
		msg, _, _ := unstructured.NestedString(o.Object, "status", "message")
		og, _, _ := unstructured.NestedInt64(o.Object, "status", "observedGeneration")
		if msg != "ready" || og != o.GetGeneration() || o.GetGeneration() != created.GetGeneration() {
			return fmt.Errorf("status %v at generation %d (created at %d)", o.Object["status"], o.GetGeneration(), created.GetGeneration())
		}
		return nil
	})
}

// setStatusSubresource adds or removes the status subresource of the
// PlainWidget CRD.
func setStatusSubresource(t *testing.T, on bool) {
	t.Helper()
	patch := `[{"op":"remove","path":"/spec/versions/0/subresources"}]`
	if on {
		patch = `[{"op":"add","path":"/spec/versions/0/subresources","value":{"status":{}}}]`
	}
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dyn(t).Resource(crds).Patch(context.Background(), "plainwidgets.test.opgate.dev", types.JSONPatchType,
		[]byte(patch), metav1.PatchOptions{}); err != nil {
		t.Errorf("patch the PlainWidget CRD: %v", err)
	}
}

// A status schema without room for observedGeneration and conditions
// would have the API server drop them from every write, and the gateway
// find them missing and write them again on every pass. The operator is
// refused (Ready=False/StatusFieldsPruned naming the CRD and the fields)
// and writes nothing; once the schema has room it runs by itself.
func TestConditionsTheStatusSchemaWouldPruneAreRefused(t *testing.T) {
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "ready"}}))
	name := "conditions-pruned"
	created, err := dyn(t).Resource(gadgets).Create(context.Background(), &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.opgate.dev/v1", "kind": "Gadget",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{"size": int64(1)}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Gadget: %v", err)
	}
	t.Cleanup(func() { _ = dyn(t).Resource(gadgets).Delete(context.Background(), name, metav1.DeleteOptions{}) })
	startGateway(t)
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Gadget}
  handler: {url: %q}
  status: {conditions: true}
  callbacks: [{id: create, events: [create]}]
`, name, h.URL))
	waitReady(t, name, "False/StatusFieldsPruned")
	if c := readyCondition(t, name); !strings.Contains(c, "gadgets.test.opgate.dev") || !strings.Contains(c, "status.conditions, status.observedGeneration") {
		t.Errorf("Ready = %s: want the CRD and the fields it lacks named", c)
	}
	n := modifiedWithin(t, "Gadget", 5*time.Second, func(ctx context.Context) (watch.Interface, error) {
		return dyn(t).Resource(gadgets).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: created.GetResourceVersion()})
	})
	if n != 0 || len(h.calls("create")) != 0 {
		t.Errorf("%d writes to the object and %d calls: want none while refused", n, len(h.calls("create")))
	}

	// The schema gains room for both: the operator runs by itself.
	setGadgetConditionsRoom(t, true)
	t.Cleanup(func() { setGadgetConditionsRoom(t, false) })
	waitReady(t, name, "True")
	eventually(t, 30*time.Second, func() error {
		o, err := dyn(t).Resource(gadgets).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		og, _, _ := unstructured.NestedInt64(o.Object, "status", "observedGeneration")
		conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		if og != o.GetGeneration() || len(conds) != 1 {
			return fmt.Errorf("status %v at generation %d", o.Object["status"], o.GetGeneration())
		}
		return nil
	})
}

// setGadgetConditionsRoom adds observedGeneration and conditions to the
// Gadget CRD's status schema, or removes them.
func setGadgetConditionsRoom(t *testing.T, on bool) {
	t.Helper()
	const at = "/spec/versions/0/schema/openAPIV3Schema/properties/status/properties/"
	patch := `[{"op":"remove","path":"` + at + `observedGeneration"},{"op":"remove","path":"` + at + `conditions"}]`
	if on {
		patch = `[{"op":"add","path":"` + at + `observedGeneration","value":{"type":"integer"}},` +
			`{"op":"add","path":"` + at + `conditions","value":{"type":"array","items":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]`
	}
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dyn(t).Resource(crds).Patch(context.Background(), "gadgets.test.opgate.dev", types.JSONPatchType,
		[]byte(patch), metav1.PatchOptions{}); err != nil {
		t.Errorf("patch the Gadget CRD: %v", err)
	}
}

// A refused operator touches nothing — except objects being deleted that
// still hold its finalizer: they are let go of (their delete callbacks run,
// statuses written without conditions), never left Terminating.
func TestRefusedConditionsStillLetDeletingObjectsGo(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "ready"}}))
	setStatusSubresource(t, true)
	removed := false
	t.Cleanup(func() {
		if !removed {
			setStatusSubresource(t, false)
		}
	})
	res := dyn(t).Resource(plainWidgets).Namespace(ns)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.opgate.dev/v1", "kind": "PlainWidget",
		"metadata": map[string]any{"name": "leaving", "namespace": ns}, "spec": map[string]any{"size": int64(1)}}}
	if _, err := res.Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create PlainWidget: %v", err)
	}
	startGateway(t)
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: plaindelete}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: PlainWidget, namespaces: [%s]}
  handler: {url: %q}
  status: {conditions: true}
  callbacks: [{id: create, events: [create]}, {id: cleanup, events: [delete]}]
`, ns, h.URL))
	waitReady(t, "plaindelete", "True")
	eventually(t, 30*time.Second, func() error {
		o, err := res.Get(context.Background(), "leaving", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if msg, _, _ := unstructured.NestedString(o.Object, "status", "message"); msg != "ready" || len(o.GetFinalizers()) == 0 {
			return fmt.Errorf("status %v, finalizers %v: want handled and held", o.Object["status"], o.GetFinalizers())
		}
		return nil
	})

	setStatusSubresource(t, false)
	removed = true
	waitReady(t, "plaindelete", "False/StatusSubresourceMissing")
	if err := res.Delete(context.Background(), "leaving", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete PlainWidget: %v", err)
	}
	eventually(t, 30*time.Second, func() error {
		o, err := res.Get(context.Background(), "leaving", metav1.GetOptions{})
		if err == nil {
			return fmt.Errorf("still there with finalizers %v while the operator is refused", o.GetFinalizers())
		}
		if n := len(h.calls("cleanup")); n == 0 {
			return fmt.Errorf("gone, but the delete callback was never called")
		}
		return nil
	})
}

// A deleting object whose status the server keeps refusing is let go of
// anyway: the status goes with the object, and holding the finalizer for
// it would leave the object Terminating for ever.
func TestDeletingObjectGoesWhenItsStatusIsRefused(t *testing.T) {
	all := []string{"*"}
	read := []string{"get", "list", "watch"}
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "bye"}}))
	op := operatorFor(t, "deletenostatus", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "cleanup", Events: []spec.Event{spec.EventDelete}}}
		s.Retry = fastRetry(200 * time.Millisecond)
	})
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets/status"}, Verbs: []string{"get"}},
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets"}, Verbs: all},
		{APIGroups: []string{"", "apps", spec.Group, "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: read},
	}
	c, _ := impersonatedConfig(t, "opgate-nostatus-delete", rules, 0)
	runGateway(t, c, runner.Options{Operators: []*spec.WebhookOperator{op}})
	w := createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, func() error {
		got, err := getWidget(t, ns, "example")
		if err != nil {
			return err
		}
		if len(got.GetFinalizers()) == 0 {
			return fmt.Errorf("no finalizer yet")
		}
		return nil
	})
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	waitWidgetGone(t, ns, "example")
	if err := calledFor(h, "cleanup", w.GetUID(), 1); err != nil {
		t.Fatal(err)
	}
}

// A sync call whose held status the API server refuses (the gateway may
// no longer write widgets/status) is a failure of the sync, retried; it
// does not take back the update deploy already made in the open update
// round (slow keeps it open): deploy gets one update call for the change,
// also once the status can be written again.
func TestARefusedSyncStatusDoesNotCallTheUpdateAgain(t *testing.T) {
	ns := newNamespace(t)
	var final atomic.Bool
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch {
		case req.Callback == "deploy" && req.Event == "sync":
			return 200, map[string]any{"status": map[string]any{"message": fmt.Sprintf("synced at %d", sizeOf(req))}}
		case req.Callback == "slow" && !final.Load():
			return 200, map[string]any{"error": map[string]any{"message": "not yet"}}
		}
		return 200, nil
	})
	op := operatorFor(t, "refusedsync", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Children = nil
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Callbacks = []spec.Callback{
			{ID: "deploy", Events: []spec.Event{spec.EventUpdate, spec.EventSync}},
			{ID: "slow", Events: []spec.Event{spec.EventUpdate}},
		}
	})
	all := []string{"*"}
	c, grant := impersonatedConfig(t, "opgate-refusedsync", []rbacv1.PolicyRule{
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets/status"}, Verbs: all},
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets"}, Verbs: all},
		{APIGroups: []string{"", "apps", spec.Group, "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	}, 0)
	runGateway(t, c, runner.Options{Operators: []*spec.WebhookOperator{op}})
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return handledNow(t, ns, "example", "refusedsync") })
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "example", "synced at 1") })

	// Take the status away from the gateway, and see the API server refuse it.
	ctx := context.Background()
	roles := kube(t).RbacV1().ClusterRoles()
	eventually(t, 10*time.Second, func() error {
		r, err := roles.Get(ctx, c.Impersonate.UserName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		r.Rules[0].Verbs = []string{"get"}
		_, err = roles.Update(ctx, r, metav1.UpdateOptions{})
		return err
	})
	gw := dynamic.NewForConfigOrDie(c).Resource(widgets).Namespace(ns)
	eventually(t, 10*time.Second, func() error {
		_, err := gw.Patch(ctx, "example", types.MergePatchType, []byte(`{"status":{"message":"synced at 1"}}`), metav1.PatchOptions{}, "status")
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("status patch not refused yet: %v", err)
		}
		return nil
	})

	updateWidget(t, ns, "example", setSize(2))
	// The sync's status refused: its failure recorded in the state, which
	// the gateway can still write.
	eventually(t, 15*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil {
			return err
		}
		raw := w.GetAnnotations()["opgate.dev/state.refusedsync"]
		st, err := state.Decode(raw)
		if err != nil {
			return err
		}
		if st.ProgressFor("deploy", "sync") == nil || st.Round == nil {
			return fmt.Errorf("state %s: deploy's refused sync not recorded yet in the open round", raw)
		}
		return nil
	})
	grant()
	final.Store(true)
	eventually(t, 15*time.Second, func() error { return handledNow(t, ns, "example", "refusedsync") })
	var updates int
	for _, req := range h.calls("deploy") {
		if req.Event == "update" {
			updates++
		}
	}
	if updates != 1 {
		t.Errorf("deploy's update called %d times for one change, want once: a refused sync status took it back", updates)
	}
}
