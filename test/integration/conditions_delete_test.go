package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// TestFailingDeleteCallbackShowsInReconciledWhileTerminating: with
// status.conditions, an object held Terminating by a failing delete
// callback (permanently, or temporarily and retried) reads Reconciled=False
// naming the callback and the annotation that lets it go, at its current
// generation (the deletion bumps it); once the callback succeeds it goes.
func TestFailingDeleteCallbackShowsInReconciledWhileTerminating(t *testing.T) {
	for _, tc := range []struct {
		name      string
		permanent bool
	}{{"permanent", true}, {"temporary", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Event == callbacks.EventDelete {
					return 200, map[string]any{"error": map[string]any{"message": "backup bucket gone", "permanent": tc.permanent, "retryAfter": "1s"}}
				}
				return 200, nil
			})
			name := "delcond" + tc.name[:4]
			startGateway(t, operatorFor(t, name, ns, h.URL, func(s *spec.OperatorSpec) {
				s.Status = &spec.StatusSpec{Conditions: true}
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
				}
			}))
			createWidget(t, ns, "example", 1)
			eventually(t, 20*time.Second, reconciled(t, ns, "example", "True", ""))
			if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { removeFinalizers(t, ns, "example") })
			eventually(t, 20*time.Second, func() error {
				w, err := getWidget(t, ns, "example")
				if err != nil || !hasFinalizer(w, "opgate.dev/"+name) {
					return fmt.Errorf("widget gone or released (err %v)", err)
				}
				og, _, _ := unstructured.NestedInt64(w.Object, "status", "observedGeneration")
				conds, _, _ := unstructured.NestedSlice(w.Object, "status", "conditions")
				for _, c := range conds {
					m, _ := c.(map[string]any)
					if m["type"] != "Reconciled" {
						continue
					}
					msg := fmt.Sprint(m["message"])
					if m["status"] != "False" || !strings.Contains(msg, "cleanup") || !strings.Contains(msg, "opgate.dev/release-finalizer") || og != w.GetGeneration() {
						return fmt.Errorf("stuck Terminating behind failing delete callback cleanup, but Reconciled=%v (%v: %v), observedGeneration %d of %d",
							m["status"], m["reason"], msg, og, w.GetGeneration())
					}
					return nil
				}
				return fmt.Errorf("no Reconciled condition: %v", w.Object["status"])
			})
		})
	}
}
