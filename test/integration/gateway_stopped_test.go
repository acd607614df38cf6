package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

// A gateway that stops (scaled to 0, no successor) says so on each
// WebhookOperator it ran: Ready=False/GatewayStopped, not Running for
// ever. Its write is pinned to the Ready it wrote last: a Ready another
// gateway wrote since (a successor) is left alone.
func TestAStoppedGatewayLeavesReadyFalseUnlessAnotherWroteSince(t *testing.T) {
	for _, tc := range []struct {
		name      string
		other     bool // another gateway writes Ready before this one stops
		wantAfter string
	}{
		{"no successor", false, "False/GatewayStopped"},
		{"a successor wrote Ready", true, "True/Running: run by the successor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(map[string]any{}))
			name := fmt.Sprintf("stopped-%v", tc.other)
			stop := startGateway(t)
			createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  callbacks:
    - {id: create, events: [create]}
`, name, ns, h.URL))
			waitReady(t, name, "True/Running")
			if tc.other {
				o, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				// As a successor writes it: the same conditions, its own message.
				conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
				for _, c := range conds {
					if m := c.(map[string]any); m["type"] == spec.ConditionReady {
						m["message"] = "run by the successor"
					}
				}
				patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": conds}})
				if _, err := dyn(t).Resource(engine.OperatorResource).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
					t.Fatal(err)
				}
				waitReady(t, name, "True/Running: run by the successor")
			}
			stop() // returns once the gateway stopped
			if c := readyCondition(t, name); !strings.HasPrefix(c, tc.wantAfter) {
				t.Errorf("Ready once the gateway stopped = %s, want %s", c, tc.wantAfter)
			}
		})
	}
}

// A running gateway puts its Ready back when another writes over it, as a
// gateway stopping during a rolling update without leader election does.
func TestARunningGatewayRestoresReadyWrittenOverByAnother(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{}))
	startGateway(t)
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: overwritten}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  callbacks:
    - {id: create, events: [create]}
`, ns, h.URL))
	waitReady(t, "overwritten", "True/Running")
	o, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), "overwritten", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if m := c.(map[string]any); m["type"] == spec.ConditionReady {
			m["status"], m["reason"], m["message"] = "False", spec.ReasonGatewayStopped, "another gateway stopped"
		}
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": conds}})
	if _, err := dyn(t).Resource(engine.OperatorResource).Patch(context.Background(), "overwritten", types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, "overwritten", "True/Running")
}
