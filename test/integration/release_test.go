package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/spec"
)

// releasedBy is nil once the widget exists and carries neither the
// operator's finalizer nor its state annotation.
func releasedBy(t *testing.T, ns, name, operator string) error {
	w, err := getWidget(t, ns, name)
	if err != nil {
		return err
	}
	if hasFinalizer(w, "opgate.dev/"+operator) {
		return fmt.Errorf("%s/%s still holds finalizer opgate.dev/%s", ns, name, operator)
	}
	if _, ok := w.GetAnnotations()["opgate.dev/state."+operator]; ok {
		return fmt.Errorf("%s/%s still carries annotation opgate.dev/state.%s", ns, name, operator)
	}
	return nil
}

// heldBy is nil once the widget carries the operator's finalizer.
func heldBy(t *testing.T, ns, name, operator string) error {
	w, err := getWidget(t, ns, name)
	if err != nil {
		return err
	}
	if !hasFinalizer(w, "opgate.dev/"+operator) {
		return fmt.Errorf("%s/%s has finalizers %v, want opgate.dev/%s", ns, name, w.GetFinalizers(), operator)
	}
	return nil
}

func createLabelledWidget(t *testing.T, ns, name string, labels map[string]string) {
	t.Helper()
	w := widget(ns, name, 1)
	w.SetLabels(labels)
	if _, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create widget: %v", err)
	}
}

func deleteWidget(t *testing.T, ns, name string) {
	t.Helper()
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete widget %s/%s: %v", ns, name, err)
	}
}

func cleanupCalledFor(h *handler, name string) bool {
	for _, r := range h.calls("cleanup") {
		if r.Object.GetName() == name {
			return true
		}
	}
	return false
}

func TestObjectLeavingSelectorReleasesFinalizer(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventDelete {
			// A delete round that stays in progress: the handler is not done yet.
			return 200, map[string]any{"finalized": false, "requeueAfter": "1h"}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "leaving", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"managed": "yes"}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	managed := map[string]string{"managed": "yes"}
	createLabelledWidget(t, ns, "leaver", managed)
	createLabelledWidget(t, ns, "busy", managed)
	for _, name := range []string{"leaver", "busy"} {
		eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, name, "leaving") })
		eventually(t, 20*time.Second, func() error { return heldBy(t, ns, name, "leaving") })
	}
	// busy is deleted and its delete round stays in progress.
	deleteWidget(t, ns, "busy")
	eventually(t, 20*time.Second, func() error {
		if !cleanupCalledFor(h, "busy") {
			return fmt.Errorf("cleanup not called for busy yet")
		}
		return nil
	})

	updateWidget(t, ns, "leaver", func(w *unstructured.Unstructured) { w.SetLabels(nil) })
	eventually(t, 20*time.Second, func() error { return releasedBy(t, ns, "leaver", "leaving") })
	if err := heldBy(t, ns, "busy", "leaving"); err != nil {
		t.Errorf("a delete round in progress on a still selected object lost its finalizer: %v", err)
	}
	deleteWidget(t, ns, "leaver")
	waitWidgetGone(t, ns, "leaver")
	if cleanupCalledFor(h, "leaver") {
		t.Errorf("cleanup called for an object that had left the operator's selection")
	}

	// A Terminating object that leaves the selection is let go as well.
	updateWidget(t, ns, "busy", func(w *unstructured.Unstructured) { w.SetLabels(nil) })
	waitWidgetGone(t, ns, "busy")
}

func TestStartupSweepReleasesObjectsTheOperatorNoLongerSelects(t *testing.T) {
	kept, dropped := newNamespace(t), newNamespace(t)
	h := newHandler(t, ok(nil))
	wide := operatorFor(t, "sweep", kept, h.URL, func(s *spec.OperatorSpec) {
		s.Watch.Namespaces = []string{kept, dropped}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	})
	stop := startGateway(t, wide)
	createWidget(t, kept, "inside", 1)
	createWidget(t, dropped, "outside", 1)
	// Another gateway's operator holds the same object: it must survive.
	createWidget(t, dropped, "shared", 1)
	eventually(t, 20*time.Second, func() error { return heldBy(t, dropped, "shared", "sweep") })
	updateWidget(t, dropped, "shared", func(w *unstructured.Unstructured) {
		w.SetFinalizers(append(w.GetFinalizers(), "opgate.dev/other-gateway"))
	})
	for _, at := range [][2]string{{kept, "inside"}, {dropped, "outside"}} {
		eventually(t, 20*time.Second, func() error { return stateHandled(t, at[0], at[1], "sweep") })
		eventually(t, 20*time.Second, func() error { return heldBy(t, at[0], at[1], "sweep") })
	}
	stop()

	// Restarted with a narrower operator: what it no longer watches is let go.
	narrow := operatorFor(t, "sweep", kept, h.URL, func(s *spec.OperatorSpec) { s.Callbacks = wide.Spec.Callbacks })
	startGateway(t, narrow)
	eventually(t, 20*time.Second, func() error { return releasedBy(t, dropped, "outside", "sweep") })
	eventually(t, 20*time.Second, func() error { return releasedBy(t, dropped, "shared", "sweep") })
	if err := heldBy(t, kept, "inside", "sweep"); err != nil {
		t.Errorf("an object still selected lost its finalizer: %v", err)
	}
	if w, _ := getWidget(t, dropped, "shared"); !hasFinalizer(w, "opgate.dev/other-gateway") {
		t.Errorf("another gateway's finalizer was released: finalizers %v", w.GetFinalizers())
	}
	deleteWidget(t, dropped, "outside")
	waitWidgetGone(t, dropped, "outside")
	if cleanupCalledFor(h, "outside") {
		t.Errorf("cleanup called for an object outside the operator's namespaces")
	}
}

// TestAddFinalizerKeepsFinalizersAddedMeanwhile writes from a stale copy,
// as the gateway does from its informer cache, after another client added
// its own finalizer.
func TestAddFinalizerKeepsFinalizersAddedMeanwhile(t *testing.T) {
	ns := newNamespace(t)
	disco := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	applier := apply.New(dyn(t), restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)))
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		initial  []string
		write    func(stale *unstructured.Unstructured) (*unstructured.Unstructured, error)
		want     []string
		wantGone string
	}{
		{
			name: "add to an empty list", initial: nil,
			write: func(stale *unstructured.Unstructured) (*unstructured.Unstructured, error) {
				return applier.AddFinalizer(ctx, stale, "opgate.dev/race")
			},
			want: []string{"example.com/other", "opgate.dev/race"},
		},
		{
			name: "add to a list", initial: []string{"example.com/first"},
			write: func(stale *unstructured.Unstructured) (*unstructured.Unstructured, error) {
				return applier.AddFinalizer(ctx, stale, "opgate.dev/race")
			},
			want: []string{"example.com/first", "example.com/other", "opgate.dev/race"},
		},
		{
			name: "remove from a list", initial: []string{"opgate.dev/race"},
			write: func(stale *unstructured.Unstructured) (*unstructured.Unstructured, error) {
				return applier.RemoveFinalizer(ctx, stale, "opgate.dev/race")
			},
			want: []string{"example.com/other"}, wantGone: "opgate.dev/race",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("race-%d", time.Now().UnixNano()%100000)
			w := widget(ns, name, 1)
			w.SetFinalizers(tt.initial)
			stale, err := dyn(t).Resource(widgets).Namespace(ns).Create(ctx, w, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				updateWidget(t, ns, name, func(w *unstructured.Unstructured) { w.SetFinalizers(nil) })
			})
			// The other client writes between the gateway's read and its write.
			updateWidget(t, ns, name, func(w *unstructured.Unstructured) {
				w.SetFinalizers(append(w.GetFinalizers(), "example.com/other"))
			})
			if _, err := tt.write(stale); err != nil {
				t.Fatalf("finalizer write from a stale copy failed instead of retrying: %v", err)
			}
			live, err := getWidget(t, ns, name)
			if err != nil {
				t.Fatal(err)
			}
			got := live.GetFinalizers()
			for _, f := range tt.want {
				if !slices.Contains(got, f) {
					t.Errorf("finalizers = %v, want %s among them (both writers' finalizers survive)", got, f)
				}
			}
			if tt.wantGone != "" && slices.Contains(got, tt.wantGone) {
				t.Errorf("finalizers = %v, want %s removed", got, tt.wantGone)
			}
		})
	}
}

// TestAddFinalizerAnswersTheObjectTheServerHolds writes the finalizer from
// a stale copy after another client changed the status, a label and (or
// not) the spec: the pass
// goes on with the object AddFinalizer returns (the handler gets it, its
// generation becomes observedGeneration), so that object must be the one
// the server holds, not the stale content under fresh metadata.
func TestAddFinalizerAnswersTheObjectTheServerHolds(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	whole, meta := appliers(t)
	for _, tt := range []struct {
		name    string
		applier *apply.Applier
		spec    bool // the spec changed too
	}{
		{"whole answers (dynamic client)", whole, true},
		{"metadata answers (REST client)", meta, true},
		{"metadata answers, status and labels changed", meta, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("fresh-%d", time.Now().UnixNano()%100000)
			stale, err := dyn(t).Resource(widgets).Namespace(ns).Create(ctx, widget(ns, name, 1), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				updateWidget(t, ns, name, func(w *unstructured.Unstructured) { w.SetFinalizers(nil) })
			})
			// The generation moves with the spec; a pin is what tells the
			// status and labels changed (without it the answer would carry
			// the stale status under fresh metadata).
			if tt.spec {
				updateWidget(t, ns, name, func(w *unstructured.Unstructured) {
					_ = unstructured.SetNestedField(w.Object, int64(7), "spec", "size")
				})
			}
			updateWidget(t, ns, name, func(w *unstructured.Unstructured) {
				w.SetLabels(map[string]string{"changed": "meanwhile"})
			})
			st := map[string]any{"status": map[string]any{"message": "changed meanwhile"}}
			body, _ := json.Marshal(st)
			if _, err := dyn(t).Resource(widgets).Namespace(ns).Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{}, "status"); err != nil {
				t.Fatal(err)
			}
			out, err := tt.applier.AddFinalizer(ctx, stale, "opgate.dev/fresh")
			if err != nil {
				t.Fatalf("finalizer write from a stale copy: %v", err)
			}
			live, err := getWidget(t, ns, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range []*unstructured.Unstructured{out, live} {
				unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
			}
			if !equality.Semantic.DeepEqual(out.Object, live.Object) {
				t.Errorf("AddFinalizer answered\n%v\nthe server holds\n%v", out.Object, live.Object)
			}
		})
	}
}
