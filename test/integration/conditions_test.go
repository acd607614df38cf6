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
	"k8s.io/apimachinery/pkg/watch"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// reconciled checks a widget's status.observedGeneration and Reconciled
// condition; want is "True", or "False/<reason>".
func reconciled(t *testing.T, ns, name, want, message string) func() error {
	return func() error {
		w, err := getWidget(t, ns, name)
		if err != nil {
			return err
		}
		og, _, _ := unstructured.NestedInt64(w.Object, "status", "observedGeneration")
		if og != w.GetGeneration() {
			return fmt.Errorf("status.observedGeneration = %d, metadata.generation %d", og, w.GetGeneration())
		}
		conds, _, _ := unstructured.NestedSlice(w.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] != "Reconciled" {
				continue
			}
			got := fmt.Sprint(m["status"])
			if got == "False" {
				got += "/" + fmt.Sprint(m["reason"])
			}
			if got != want || !strings.Contains(fmt.Sprint(m["message"]), message) {
				return fmt.Errorf("Reconciled = %s (%v), want %s with %q", got, m["message"], want, message)
			}
			return nil
		}
		return fmt.Errorf("no Reconciled condition in %v", conds)
	}
}

// handledDigest is the digest of the essence an operator's state records
// as handled on a widget.
func handledDigest(t *testing.T, ns, name, operator string) string {
	t.Helper()
	w, err := getWidget(t, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Decode(w.GetAnnotations()["opgate.dev/state."+operator])
	if err != nil {
		t.Fatalf("state of %s/%s: %v", ns, name, err)
	}
	return st.Handled
}

// writesWhileIdle counts the changes to a widget seen during window.
func writesWhileIdle(t *testing.T, ns, name string, window time.Duration) int {
	t.Helper()
	w, err := getWidget(t, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	wi, err := dyn(t).Resource(widgets).Namespace(ns).Watch(ctx, metav1.ListOptions{
		FieldSelector: "metadata.name=" + name, ResourceVersion: w.GetResourceVersion()})
	if err != nil {
		t.Fatalf("watch widget: %v", err)
	}
	defer wi.Stop()
	n := 0
	for ev := range wi.ResultChan() {
		if ev.Type == watch.Modified {
			n++
			if n <= 5 { // a write loop makes thousands
				u, _ := ev.Object.(*unstructured.Unstructured)
				t.Logf("write while idle (before: rv %s, annotations %v, status %v): rv %s, annotations %v, status %v",
					w.GetResourceVersion(), w.GetAnnotations(), w.Object["status"], u.GetResourceVersion(), u.GetAnnotations(), u.Object["status"])
			}
		}
	}
	return n
}

// modifiedWithin counts the changes the watch open starts sees during
// window: how often an object was written while it should not be.
func modifiedWithin(t *testing.T, what string, window time.Duration, open func(context.Context) (watch.Interface, error)) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	wi, err := open(ctx)
	if err != nil {
		t.Fatalf("watch %s: %v", what, err)
	}
	defer wi.Stop()
	n := 0
	for ev := range wi.ResultChan() {
		if ev.Type == watch.Modified {
			n++
		}
	}
	return n
}

// With status.conditions the gateway keeps observedGeneration and a
// Reconciled condition next to what the handler answers: False with the
// failing callback's reason while it fails, True once it succeeds; and an
// object left alone is never written again.
func TestReconciledConditionFollowsTheCallbacksWithoutWritesWhileIdle(t *testing.T) {
	ns := newNamespace(t)
	var failing atomic.Bool
	failing.Store(true)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if failing.Load() && req.Event == callbacks.Event(spec.EventCreate) {
			return 200, map[string]any{"error": map[string]any{"message": "database down", "retryAfter": "1s"}}
		}
		return 200, map[string]any{"status": map[string]any{"message": "ready"}}
	})
	startGateway(t, operatorFor(t, "conditioned", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, reconciled(t, ns, "example", "False/HandlerError", "database down"))

	failing.Store(false)
	eventually(t, 30*time.Second, reconciled(t, ns, "example", "True", ""))
	eventually(t, 30*time.Second, func() error { return statusMessage(t, ns, "example", "ready") })
	eventually(t, 30*time.Second, func() error { return called(h, "sync", 1) })
	eventually(t, 30*time.Second, func() error { return stateHandled(t, ns, "example", "conditioned") })
	before := handledDigest(t, ns, "example", "conditioned")

	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	eventually(t, 30*time.Second, reconciled(t, ns, "example", "True", "")) // observedGeneration follows
	// The state write that records size 2 as handled comes after the
	// status write: an old handled state, with no round open, would let
	// the idle window start before it.
	eventually(t, 30*time.Second, func() error {
		if err := stateHandled(t, ns, "example", "conditioned"); err != nil {
			return err
		}
		if now := handledDigest(t, ns, "example", "conditioned"); now == before {
			return fmt.Errorf("handled essence still %s, the one before the update", now)
		}
		return nil
	})
	syncs := len(h.calls("sync"))
	if n := writesWhileIdle(t, ns, "example", 10*time.Second); n != 0 {
		t.Errorf("%d writes to an idle object: the gateway's own status write wakes it", n)
	}
	if n := len(h.calls("sync")); n != syncs {
		t.Errorf("sync called %d more times while idle", n-syncs)
	}
}
