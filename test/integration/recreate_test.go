package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

func job(name, image string) map[string]any {
	return map[string]any{
		"apiVersion": "batch/v1", "kind": "Job",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"restartPolicy": "Never",
			"containers":    []any{map[string]any{"name": "main", "image": image}},
		}}},
	}
}

// TestRecreateReplacesJobWithBackgroundPropagation: a Job's pod template is
// immutable, so the Recreate strategy deletes it and applies it again. The
// delete must propagate in the background (batch/v1 Jobs orphan their pods
// by default, and an orphan or foreground deletion leaves the Job in place
// behind a finalizer), and the new Job is applied only once the old is gone.
func TestRecreateReplacesJobWithBackgroundPropagation(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		image, _, _ := unstructured.NestedString(req.Object.Object, "spec", "image")
		if image == "" {
			image = "busybox:1"
		}
		return 200, map[string]any{"children": []any{job("work", image)}}
	})
	startGateway(t, operatorFor(t, "recreate", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "batch/v1", Kind: "Job", UpdateStrategy: spec.UpdateRecreate}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "update", Events: []spec.Event{spec.EventUpdate}},
		}
	}))
	createWidget(t, ns, "example", 1)
	var oldUID types.UID
	eventually(t, 20*time.Second, func() error {
		j, err := kube(t).BatchV1().Jobs(ns).Get(context.Background(), "work", metav1.GetOptions{})
		if err != nil {
			return err
		}
		oldUID = j.UID
		return nil
	})
	// Someone else's finalizer holds the old Job for a moment: the gateway
	// must wait for it to go instead of applying over a Job being deleted.
	const hold = "test.opgate.dev/hold"
	addHold := []byte(`{"metadata":{"finalizers":["` + hold + `"]}}`)
	if _, err := kube(t).BatchV1().Jobs(ns).Patch(context.Background(), "work", types.MergePatchType, addHold, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, "busybox:2", "spec", "image")
	})
	eventually(t, 20*time.Second, func() error {
		j, err := kube(t).BatchV1().Jobs(ns).Get(context.Background(), "work", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if j.UID != oldUID || j.DeletionTimestamp == nil {
			return fmt.Errorf("old Job not being deleted (uid %s, deletionTimestamp %v)", j.UID, j.DeletionTimestamp)
		}
		if !slices.Equal(j.Finalizers, []string{hold}) {
			return fmt.Errorf("old Job's finalizers = %v, want only %s: deleted without background propagation", j.Finalizers, hold)
		}
		return nil
	})
	releaseHold := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := kube(t).BatchV1().Jobs(ns).Patch(context.Background(), "work", types.MergePatchType, releaseHold, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		j, err := kube(t).BatchV1().Jobs(ns).Get(context.Background(), "work", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if j.UID == oldUID || j.DeletionTimestamp != nil {
			return fmt.Errorf("Job not re-created (uid %s, old %s, deletionTimestamp %v)", j.UID, oldUID, j.DeletionTimestamp)
		}
		if got := j.Spec.Template.Spec.Containers[0].Image; got != "busybox:2" {
			return fmt.Errorf("re-created Job runs %s, want busybox:2", got)
		}
		return nil
	})
}

// TestRecreateKeepsTheChildWhenTheAnswerIsInvalidInItself: Recreate replaces
// a child only for a change no update may make. An answer the API server
// would refuse on create as well (a negative backoffLimit) is refused with
// the running Job left in place, also when the answer changes the Job's
// immutable template too: deleting it could only leave no Job at all.
func TestRecreateKeepsTheChildWhenTheAnswerIsInvalidInItself(t *testing.T) {
	for _, tt := range []struct {
		name, operator, image string
	}{
		{"only an invalid value", "recreate-invalid", "busybox:1"},
		{"an invalid value and a changed template", "recreate-invalid-template", "busybox:2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				size, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size")
				if size < 2 {
					return 200, map[string]any{"children": []any{job("work", "busybox:1")}}
				}
				j := job("work", tt.image)
				_ = unstructured.SetNestedField(j, int64(-1), "spec", "backoffLimit")
				return 200, map[string]any{"children": []any{j}}
			})
			startGateway(t, operatorFor(t, tt.operator, ns, h.URL, func(s *spec.OperatorSpec) {
				s.Children = []spec.ChildSpec{{APIVersion: "batch/v1", Kind: "Job", UpdateStrategy: spec.UpdateRecreate}}
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "update", Events: []spec.Event{spec.EventUpdate}},
				}
			}))
			createWidget(t, ns, "example", 1)
			var uid types.UID
			eventually(t, 20*time.Second, func() error {
				j, err := kube(t).BatchV1().Jobs(ns).Get(context.Background(), "work", metav1.GetOptions{})
				if err != nil {
					return err
				}
				uid = j.UID
				return nil
			})
			updateWidget(t, ns, "example", setSize(2))
			// The refusal is reported once the pass is over, after any
			// delete it made.
			eventually(t, 20*time.Second, func() error {
				for _, e := range events(t, ns, "example") {
					if e.Type == "Warning" && e.Reason == "ApplyRejected" && strings.Contains(e.Message, "spec.backoffLimit") {
						return nil
					}
				}
				return fmt.Errorf("no Warning ApplyRejected event naming spec.backoffLimit on %s/example", ns)
			})
			eventually(t, 10*time.Second, func() error { return stateSettled(t, ns, "example", tt.operator) })
			j, err := kube(t).BatchV1().Jobs(ns).Get(context.Background(), "work", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the running Job is gone for an answer the API server refused: %v", err)
			}
			if j.UID != uid || j.DeletionTimestamp != nil {
				t.Fatalf("the running Job was replaced or is being deleted (uid %s, was %s; deletionTimestamp %v)", j.UID, uid, j.DeletionTimestamp)
			}
		})
	}
}

// A parent deleted with --cascade=orphan (its Job's ownerReference removed,
// as the garbage collector does then) and created again with a changed
// spec adopts its predecessor's Job by answering it (docs/contract.md).
// With updateStrategy Recreate and an immutable field changed, adopting
// means replacing it, as for a child the parent already owns.
func TestRecreateReplacesAnOrphanedChildTheAnswerAdopts(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		size, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size")
		return 200, map[string]any{"children": []any{job("work", fmt.Sprintf("busybox:%d", size))}}
	})
	startGateway(t, operatorFor(t, "recreate-adopt", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "batch/v1", Kind: "Job", UpdateStrategy: spec.UpdateRecreate}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	ctx := context.Background()
	eventually(t, 20*time.Second, func() error {
		_, err := kube(t).BatchV1().Jobs(ns).Get(ctx, "work", metav1.GetOptions{})
		return err
	})
	if _, err := kube(t).BatchV1().Jobs(ns).Patch(ctx, "work", types.MergePatchType, []byte(`{"metadata":{"ownerReferences":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(ctx, "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "example")
	createWidget(t, ns, "example", 2)
	eventually(t, 30*time.Second, func() error {
		j, err := kube(t).BatchV1().Jobs(ns).Get(ctx, "work", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := j.Spec.Template.Spec.Containers[0].Image; got != "busybox:2" {
			var reasons []string
			for _, e := range events(t, ns, "example") {
				reasons = append(reasons, e.Reason+": "+e.Message)
			}
			return fmt.Errorf("Job runs %s, want busybox:2; events: %v", got, reasons)
		}
		if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Name != "example" {
			return fmt.Errorf("Job owned by %v, want the new parent", j.OwnerReferences)
		}
		return nil
	})
}
