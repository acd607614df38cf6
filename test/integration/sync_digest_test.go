package integration

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/spec"
)

// createLabelled creates a Widget with labels.
func createLabelled(t *testing.T, ns, name string, labels map[string]string) {
	t.Helper()
	w := widget(ns, name, 1)
	w.SetLabels(labels)
	if _, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create widget %s: %v", name, err)
	}
}

// syncedWith reports whether one of name's sync requests carried the
// related Widget related.
func syncedWith(h *handler, name, related string) error {
	for _, req := range h.calls("sync") {
		if req.Object.GetName() != name {
			continue
		}
		if _, ok := req.Related["test.opgate.dev/v1/Widget"][related]; ok {
			return nil
		}
	}
	return fmt.Errorf("no sync of %s carried its related Widget %s yet", name, related)
}

// The first status a sync writes, on an object that had none, is the
// sync's own write like any later one: sync is called once, not once more
// for it. (The status went from absent to the written fields; compared
// outside them, an empty status stayed where none had been.)
func TestTheFirstStatusASyncWritesCallsNoSecondSync(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Object.GetName() == "witness" {
			return 200, nil
		}
		return 200, map[string]any{"status": map[string]any{"message": "synced"}}
	})
	op := operatorFor(t, "firststatus", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
	})
	createWidget(t, ns, "a", 1)
	startGateway(t, op)
	eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "a", "synced") })
	// A witness goes through a sync: by then the gateway has long seen
	// a's writes.
	createWidget(t, ns, "witness", 1)
	eventually(t, 20*time.Second, func() error { return calledForName(h, "sync", "witness") })
	if got := countFor(h, "sync", "a"); got != 1 {
		t.Fatalf("a synced %d times, want 1: the first status its sync wrote called it again", got)
	}
}

// An object among its own related objects (peers selected by a label they
// share) is synced once: the status its sync writes is its own write
// wherever the object appears, among its related objects too, and the
// Widget it applies as a child, related as well, likewise.
func TestASyncsOwnWritesToItsOwnRelatedObjectsCallNoFurtherSync(t *testing.T) {
	for _, tc := range []struct {
		name     string
		children bool // answer a child Widget
		created  bool // made by the first sync, in no group: a child, not related
		message  func(n int64) string
	}{
		{"the same status each time", false, false, func(int64) string { return "synced" }},
		{"a new status each time", false, false, func(n int64) string { return fmt.Sprintf("synced %d", n) }},
		{"a related child changed each time", true, false, func(n int64) string { return fmt.Sprintf("synced %d", n) }},
		{"a child it creates", true, true, func(n int64) string { return fmt.Sprintf("synced %d", n) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			var n atomic.Int64
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Object.GetName() == "witness" {
					return 200, nil
				}
				i := n.Add(1)
				answer := map[string]any{"status": map[string]any{"message": tc.message(i)}}
				if tc.children {
					child := widget(ns, "peer", (i-1)%10+1) // the CRD allows 1-10
					if !tc.created {
						child.SetLabels(map[string]string{"group": "g"})
					}
					answer["children"] = []any{child.Object}
				}
				return 200, answer
			})
			op := operatorFor(t, "peers", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"role": "lead"}}
				s.Children = nil
				if tc.children {
					s.Children = []spec.ChildSpec{{APIVersion: "test.opgate.dev/v1", Kind: "Widget"}}
				}
				s.Related = []spec.RelatedSpec{{APIVersion: "test.opgate.dev/v1", Kind: "Widget",
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": "{{ .metadata.labels.group }}"}}}}
				s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
			})
			// Both exist before the gateway starts, so its first sync of
			// a already carries them among a's related objects. The peer
			// is the operator's (its label), as one an earlier run made:
			// an object of the user's it would not take over (ChildExists).
			if tc.children && !tc.created {
				createLabelled(t, ns, "peer", map[string]string{"group": "g", check.OperatorLabel: "peers"})
			}
			createLabelled(t, ns, "a", map[string]string{"group": "g", "role": "lead"})
			startGateway(t, op)
			eventually(t, 20*time.Second, func() error { return syncedWith(h, "a", "a") })
			eventually(t, 10*time.Second, func() error { return statusWritten(t, ns, "a") })

			// A witness of a group of its own goes through a sync: by then
			// the gateway has long seen a's writes.
			createLabelled(t, ns, "witness", map[string]string{"group": "w", "role": "lead"})
			eventually(t, 20*time.Second, func() error { return syncedWith(h, "witness", "witness") })
			if got := countFor(h, "sync", "a"); got != 1 {
				t.Fatalf("a synced %d times, want 1: what its own sync wrote called it again", got)
			}
		})
	}
}

// statusWritten reports whether a Widget's status carries a message.
func statusWritten(t *testing.T, ns, name string) error {
	w, err := getWidget(t, ns, name)
	if err != nil {
		return err
	}
	if m, _, _ := unstructured.NestedString(w.Object, "status", "message"); m == "" {
		return fmt.Errorf("status of %s not written yet", name)
	}
	return nil
}

// Another operator's bookkeeping on a related object (its state
// annotation, its finalizer) is no change this operator's sync reacts
// to, as the gateway's own on the watched object is not.
func TestAnotherOperatorsBookkeepingOnARelatedObjectCallsNoSync(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(w *unstructured.Unstructured)
	}{
		{"its state annotation", func(w *unstructured.Unstructured) {
			ann := w.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			ann["opgate.dev/state.maker"] = `{"uid":"` + string(w.GetUID()) + `"}`
			w.SetAnnotations(ann)
		}},
		{"its finalizer", func(w *unstructured.Unstructured) {
			w.SetFinalizers(append(w.GetFinalizers(), "opgate.dev/maker"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(nil))
			op := operatorFor(t, "viewer", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"role": "viewer"}}
				s.Children = nil
				s.Related = []spec.RelatedSpec{{APIVersion: "test.opgate.dev/v1", Kind: "Widget",
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "worker"}}}}
				s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
			})
			// Both exist before the gateway starts, so its first sync of
			// the viewer already carries the worker.
			createLabelled(t, ns, "worker", map[string]string{"role": "worker"})
			t.Cleanup(func() { removeFinalizers(t, ns, "worker") })
			createLabelled(t, ns, "viewer", map[string]string{"role": "viewer"})
			startGateway(t, op)
			eventually(t, 20*time.Second, func() error { return syncedWith(h, "viewer", "worker") })

			updateWidget(t, ns, "worker", tc.edit)
			// A second viewer, created after the edit, goes through a
			// sync: by then the gateway has long seen the edit.
			createLabelled(t, ns, "witness", map[string]string{"role": "viewer"})
			eventually(t, 20*time.Second, func() error { return syncedWith(h, "witness", "worker") })
			if got := countFor(h, "sync", "viewer"); got != 1 {
				t.Fatalf("viewer synced %d times, want 1: another operator's bookkeeping on its related Widget called it again", got)
			}
		})
	}
}

// removeFinalizers empties an object's finalizers, so the test's namespace
// can go.
func removeFinalizers(t *testing.T, ns, name string) {
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	_, _ = dyn(t).Resource(widgets).Namespace(ns).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{})
}
