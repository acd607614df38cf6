package integration

import (
	"context"
	"fmt"
	"slices"
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
