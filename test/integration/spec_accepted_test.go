package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

// condition returns a WebhookOperator's condition of type typ, nil when
// it has none.
func condition(t *testing.T, name, typ string) *metav1.Condition {
	t.Helper()
	o, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get WebhookOperator %s: %v", name, err)
	}
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		if m["type"] != typ {
			continue
		}
		out := &metav1.Condition{Type: typ, Status: metav1.ConditionStatus(fmt.Sprint(m["status"])),
			Reason: fmt.Sprint(m["reason"]), Message: fmt.Sprint(m["message"])}
		if g, ok := m["observedGeneration"].(int64); ok {
			out.ObservedGeneration = g
		}
		return out
	}
	return nil
}

func patchOperatorSpec(t *testing.T, name, mergePatch string) int64 {
	t.Helper()
	out, err := dyn(t).Resource(engine.OperatorResource).Patch(context.Background(), name, types.MergePatchType,
		[]byte(mergePatch), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("patch WebhookOperator %s: %v", name, err)
	}
	return out.GetGeneration()
}

// invalidSpecEvents returns the messages and counts of the InvalidSpec
// Warning Events on a WebhookOperator (its Events live in "default").
func invalidSpecEvents(t *testing.T, name string) map[string]int32 {
	t.Helper()
	out := map[string]int32{}
	for _, e := range events(t, metav1.NamespaceDefault, name) {
		if e.Type == "Warning" && e.Reason == spec.ReasonInvalidSpec && e.InvolvedObject.Kind == spec.Kind {
			out[e.Message] += e.Count
		}
	}
	return out
}

func TestInvalidLiveEditKeepsRunningGenerationReadyAndRefusesSpec(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	startGateway(t)
	const name = "edited"
	gen1 := createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, name, ns, h.URL)).GetGeneration()
	waitReady(t, name, "True/Running")

	// An interval on a create callback passes the CRD's schema but not the
	// gateway's semantic checks.
	gen2 := patchOperatorSpec(t, name, `{"spec":{"callbacks":[{"id":"create","events":["create"],"interval":"1m"}]}}`)
	eventually(t, 20*time.Second, func() error {
		c := condition(t, name, spec.ConditionSpecAccepted)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != spec.ReasonInvalidSpec ||
			!strings.Contains(c.Message, "/spec/callbacks/0/interval") || c.ObservedGeneration != gen2 {
			return fmt.Errorf("SpecAccepted = %+v, want False/InvalidSpec naming /spec/callbacks/0/interval for generation %d", c, gen2)
		}
		return nil
	})

	// The running generation keeps handling objects; a watched count of 1
	// in the status proves a periodic report happened since the edit.
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, func() error {
		if err := called(h, "create", 1); err != nil {
			return err
		}
		o, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n, _, _ := unstructured.NestedInt64(o.Object, "status", "watchedObjects"); n != 1 {
			return fmt.Errorf("status.watchedObjects = %d, want 1", n)
		}
		return nil
	})
	ready := condition(t, name, spec.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != gen1 {
		t.Errorf("Ready = %+v after an invalid edit, want True for the running generation %d", ready, gen1)
	}
	if c := condition(t, name, spec.ConditionSpecAccepted); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("SpecAccepted = %+v after a periodic report, want it still False", c)
	}
	evs := invalidSpecEvents(t, name)
	if len(evs) != 1 {
		t.Errorf("InvalidSpec events = %v, want one", evs)
	}
	for msg, n := range evs {
		if n != 1 {
			t.Errorf("InvalidSpec event %q recorded %d times, want once", msg, n)
		}
	}

	// Another error is another Event; fixing the spec accepts and runs it.
	patchOperatorSpec(t, name, `{"spec":{"callbacks":[{"id":"create","events":["create"],"idle":"1m"}]}}`)
	eventually(t, 20*time.Second, func() error {
		if evs := invalidSpecEvents(t, name); len(evs) != 2 {
			return fmt.Errorf("InvalidSpec events = %v, want two distinct ones", evs)
		}
		return nil
	})
	gen4 := patchOperatorSpec(t, name, `{"spec":{"callbacks":[{"id":"create","events":["create","update"]}]}}`)
	eventually(t, 20*time.Second, func() error {
		c, r := condition(t, name, spec.ConditionSpecAccepted), condition(t, name, spec.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != gen4 {
			return fmt.Errorf("SpecAccepted = %+v, want True for generation %d", c, gen4)
		}
		if r == nil || r.Status != metav1.ConditionTrue || r.ObservedGeneration != gen4 {
			return fmt.Errorf("Ready = %+v, want True for generation %d", r, gen4)
		}
		return nil
	})
}
