package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

// Two operators keeping status conditions on one kind would overwrite each
// other's Reconciled condition and observedGeneration, each write the
// other's event to write its own, without end. The one whose name sorts
// first keeps them, whichever was registered first; the other is
// Ready=False/ConditionsConflict naming it and touches no object until the
// conflict lifts (the first deleted, or its conditions turned off), when it
// takes over by itself.
func TestOnlyTheOperatorNamedFirstKeepsConditionsOnAKind(t *testing.T) {
	for _, tc := range []struct {
		name        string
		prefix      string // of both operators' names, unique per case
		secondFirst bool   // the operator whose name sorts later is registered first
		lift        func(t *testing.T, first string)
	}{
		{"the later name registered first, the first deleted", "conflict-del", true, func(t *testing.T, first string) {
			if err := dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), first, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"the first name registered first, its conditions turned off", "conflict-off", false, func(t *testing.T, first string) {
			patch := []byte(`{"spec":{"status":{"conditions":false}}}`)
			if _, err := dyn(t).Resource(engine.OperatorResource).Patch(context.Background(), first, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			first, second := tc.prefix+"-a", tc.prefix+"-b"
			hFirst := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "handled"}}))
			// The second disagrees: its Reconciled is False for good.
			hSecond := newHandler(t, ok(map[string]any{"error": map[string]any{"message": "refusing", "permanent": true}}))
			startGateway(t) // the registry of WebhookOperator objects
			createWidget(t, ns, "example", 1)
			register := func(name, url string) {
				createOperatorObject(t, conditionsOperator(name, ns, url))
			}
			if tc.secondFirst {
				register(second, hSecond.URL)
				waitReady(t, second, "True/Running")
				eventually(t, 30*time.Second, reconciled(t, ns, "example", "False/HandlerError", "refusing"))
				register(first, hFirst.URL)
			} else {
				register(first, hFirst.URL)
				waitReady(t, first, "True/Running")
				eventually(t, 30*time.Second, reconciled(t, ns, "example", "True", ""))
				register(second, hSecond.URL)
			}

			eventually(t, 30*time.Second, func() error {
				if n := writesWhileIdle(t, ns, "example", 2*time.Second); n != 0 {
					return fmt.Errorf("%d writes to the object in 2s: both operators write its Reconciled condition", n)
				}
				return nil
			})
			if err := reconciled(t, ns, "example", "True", "")(); err != nil {
				t.Errorf("the first operator's condition: %v", err)
			}
			waitReady(t, first, "True/Running")
			waitReady(t, second, "False/ConditionsConflict")
			if c := readyCondition(t, second); !strings.Contains(c, first) {
				t.Errorf("Ready of %s = %s: want the operator that keeps the conditions named", second, c)
			}
			if !tc.secondFirst {
				w, err := getWidget(t, ns, "example")
				if err != nil {
					t.Fatal(err)
				}
				if n, st := len(hSecond.calls("create")), w.GetAnnotations()["opgate.dev/state."+second]; n != 0 || st != "" {
					t.Errorf("the refused operator was called %d times and wrote state %q: want it to touch nothing", n, st)
				}
			}

			tc.lift(t, first)
			waitReady(t, second, "True/Running")
			eventually(t, 30*time.Second, reconciled(t, ns, "example", "False/HandlerError", "refusing"))
		})
	}
}

// conditionsOperator is a WebhookOperator with status.conditions: true on
// the Widgets of namespace ns, with one create callback.
func conditionsOperator(name, ns, url string) string {
	return fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  status: {conditions: true}
  callbacks: [{id: create, events: [create]}]
`, name, ns, url)
}

// Operators of one namespaced kind watching other namespaces keep the
// conditions of their own objects: nothing is shared to fight over, so
// neither is refused.
func TestOperatorsOfOtherNamespacesEachKeepTheirConditions(t *testing.T) {
	nsA, nsB := newNamespace(t), newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "handled"}}))
	startGateway(t)
	for _, tc := range []struct{ name, ns string }{{"split-a", nsA}, {"split-b", nsB}} {
		createOperatorObject(t, conditionsOperator(tc.name, tc.ns, h.URL))
		createWidget(t, tc.ns, "example", 1)
	}
	for _, tc := range []struct{ name, ns string }{{"split-a", nsA}, {"split-b", nsB}} {
		waitReady(t, tc.name, "True/Running")
		eventually(t, 30*time.Second, reconciled(t, tc.ns, "example", "True", ""))
	}
}

// Another operator's handler answering its own conditions on objects whose
// conditions an operator keeps: its list (a merge patch replaces arrays)
// would drop Reconciled, the keeper would write it back, which would call
// the other's sync again, without end. A handler's conditions never remove
// the gateway's Reconciled: both conditions stay, and an idle object is
// not written, however often the other's sync answers the same.
func TestAnotherOperatorsConditionsLeaveReconciledInPlace(t *testing.T) {
	ns := newNamespace(t)
	keeper := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "handled"}}))
	backup := newHandler(t, ok(map[string]any{"status": map[string]any{"conditions": []any{map[string]any{
		"type": "BackedUp", "status": "True", "reason": "Done", "message": "backed up",
		"lastTransitionTime": "2026-01-01T00:00:00Z"}}}}))
	startGateway(t,
		operatorFor(t, "keeper", ns, keeper.URL, func(s *spec.OperatorSpec) {
			s.Status = &spec.StatusSpec{Conditions: true}
			s.Children = nil
			s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
		}),
		operatorFor(t, "backup", ns, backup.URL, func(s *spec.OperatorSpec) {
			s.Children = nil
			s.ResyncPeriod = &spec.Duration{Duration: time.Second}
			s.Callbacks = []spec.Callback{{ID: "report", Events: []spec.Event{spec.EventSync}}}
		}))
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, reconciled(t, ns, "example", "True", ""))
	eventually(t, 30*time.Second, func() error {
		if c := conditionTimes(t, ns, "example", false); !strings.Contains(c, "BackedUp=") || !strings.Contains(c, "Reconciled=") {
			return fmt.Errorf("conditions %s: want BackedUp and Reconciled", c)
		}
		return nil
	})
	for _, op := range []string{"keeper", "backup"} { // state writes come after status
		eventually(t, 30*time.Second, func() error { return stateHandled(t, ns, "example", op) })
	}
	before := conditionTimes(t, ns, "example", true)
	syncs := len(backup.calls("report"))
	if n := writesWhileIdle(t, ns, "example", 5*time.Second); n != 0 {
		t.Errorf("%d writes to an idle object in 5s (backup's sync called %d times)", n, len(backup.calls("report"))-syncs)
	}
	if n := len(backup.calls("report")) - syncs; n < 2 {
		t.Errorf("backup's sync called %d times in the window, want at least 2 (resync 1s)", n)
	}
	if after := conditionTimes(t, ns, "example", true); after != before {
		t.Errorf("conditions changed while idle: %s, before %s", after, before)
	}
}
