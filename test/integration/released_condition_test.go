package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// An object another controller's finalizer keeps Terminating: its delete
// callback fails, so Reconciled is False naming the gateway's finalizer;
// then the gateway lets go (the callback succeeds, or the release
// annotation). Later passes leave an object the gateway does not hold as it
// is, so the releasing pass must write Reconciled as the gateway left it,
// or it blames the gateway for as long as the other finalizer stays.
func TestReconciledOfAnObjectOthersHoldSaysTheGatewayLetGo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		letGo    func(t *testing.T, ns string, failing *atomic.Bool)
		status   string
		contains string
	}{
		{"delete callback succeeds", func(_ *testing.T, _ string, failing *atomic.Bool) { failing.Store(false) }, "True", ""},
		{"release annotation", func(t *testing.T, ns string, _ *atomic.Bool) {
			patch := []byte(`{"metadata":{"annotations":{"opgate.dev/release-finalizer":"true"}}}`)
			if _, err := dyn(t).Resource(widgets).Namespace(ns).Patch(context.Background(), "example", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "False", "backup running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			var failing atomic.Bool
			failing.Store(true)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Event == callbacks.EventDelete && failing.Load() {
					return 200, map[string]any{"error": map[string]any{"message": "backup running", "retryAfter": "1s"}}
				}
				return 200, nil
			})
			name := "released"
			startGateway(t, operatorFor(t, name, ns, h.URL, func(s *spec.OperatorSpec) {
				s.Status = &spec.StatusSpec{Conditions: true}
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
				}
			}))
			createWidget(t, ns, "example", 1)
			eventually(t, 20*time.Second, reconciled(t, ns, "example", "True", ""))
			eventually(t, 10*time.Second, func() error { // another controller's finalizer
				w, err := getWidget(t, ns, "example")
				if err != nil {
					return err
				}
				w.SetFinalizers(append(w.GetFinalizers(), "test.opgate.dev/hold"))
				_, err = dyn(t).Resource(widgets).Namespace(ns).Update(context.Background(), w, metav1.UpdateOptions{})
				return err
			})
			t.Cleanup(func() { removeFinalizers(t, ns, "example") })
			if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, reconciledHas(t, ns, "False", "stays until the delete callbacks succeed"))
			tc.letGo(t, ns, &failing)
			eventually(t, 20*time.Second, func() error {
				w, err := getWidget(t, ns, "example")
				if err != nil {
					return err
				}
				if hasFinalizer(w, "opgate.dev/"+name) {
					return fmt.Errorf("gateway still holds it; finalizers %v", w.GetFinalizers())
				}
				return reconciledHas(t, ns, tc.status, "the gateway let go; other finalizers hold it: test.opgate.dev/hold")()
			})
			w, err := getWidget(t, ns, "example")
			if err != nil {
				t.Fatal(err)
			}
			if m := reconciledOf(w); strings.Contains(fmt.Sprint(m["message"]), "stays until") || !strings.Contains(fmt.Sprint(m["message"]), tc.contains) {
				t.Fatalf("released by the gateway, yet Reconciled reads %v", m)
			}
		})
	}
}

func reconciledOf(w *unstructured.Unstructured) map[string]any {
	conds, _, _ := unstructured.NestedSlice(w.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == "Reconciled" {
			return m
		}
	}
	return nil
}

// reconciledHas polls for the object example's Reconciled condition of
// status with message containing part.
func reconciledHas(t *testing.T, ns, status, part string) func() error {
	return func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil {
			return err
		}
		m := reconciledOf(w)
		if m["status"] != status || !strings.Contains(fmt.Sprint(m["message"]), part) {
			return fmt.Errorf("Reconciled = %v, want %s with %q", m, status, part)
		}
		return nil
	}
}
