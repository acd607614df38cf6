package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/opgate/opgate/gateway/state"
)

// walk is one walkthrough: a namespace, the custom resource it plays with,
// and assertions on what the cluster holds, each polled with a deadline.
type walk struct {
	t    *testing.T
	ns   string
	kube kubernetes.Interface
	gvr  schema.GroupVersionResource
	kind string
	res  dynamic.ResourceInterface
	// began is when the walk started; steps are logged with the time since.
	began time.Time
}

func newWalk(t *testing.T, gvr schema.GroupVersionResource, kind string) *walk {
	t.Helper()
	kube := Clientset(t)
	ns := NewNamespace(t, kube)
	return &walk{t: t, ns: ns, kube: kube, gvr: gvr, kind: kind, res: dynamicClient(t).Resource(gvr).Namespace(ns), began: time.Now()}
}

// step logs the next step of the story, with the time since the walk began.
func (w *walk) step(format string, args ...any) {
	w.t.Helper()
	w.t.Logf("%6.1fs  %s", time.Since(w.began).Seconds(), fmt.Sprintf(format, args...))
}

// create creates the custom resource with the given spec.
func (w *walk) create(name string, spec map[string]any) *unstructured.Unstructured {
	w.t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": w.gvr.GroupVersion().String(),
		"kind":       w.kind,
		"metadata":   map[string]any{"name": name},
		"spec":       spec,
	}}
	created, err := w.res.Create(w.t.Context(), obj, metav1.CreateOptions{})
	if err != nil {
		w.t.Fatalf("create %s %s/%s: %v", w.kind, w.ns, name, err)
	}
	return created
}

// patchSpec merges fields into the resource's spec, as kubectl patch does.
func (w *walk) patchSpec(name string, fields map[string]any) {
	w.t.Helper()
	body := fmt.Appendf(nil, `{"spec": %s}`, mustJSON(w.t, fields))
	if _, err := w.res.Patch(w.t.Context(), name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		w.t.Fatalf("patch %s %s/%s with %s: %v", w.kind, w.ns, name, body, err)
	}
}

// get reads the custom resource.
func (w *walk) get(ctx context.Context, name string) (*unstructured.Unstructured, error) {
	return w.res.Get(ctx, name, metav1.GetOptions{})
}

// waitFinalizer waits until the gateway holds its finalizer on the resource.
func (w *walk) waitFinalizer(name, finalizer string) {
	w.t.Helper()
	Eventually(w.t, rolloutTimeout, "finalizer "+finalizer+" on "+name, func(ctx context.Context) (bool, string, error) {
		obj, err := w.get(ctx, name)
		if err != nil {
			return false, "", err
		}
		return slices.Contains(obj.GetFinalizers(), finalizer), fmt.Sprintf("finalizers %v", obj.GetFinalizers()), nil
	})
}

// waitDeployment waits until Deployment name, controlled by the resource
// with ownerUID, has rolled out replicas pods of image: every replica
// updated and ready, none of an older template left. labels, when given,
// must be on its pod template.
func (w *walk) waitDeployment(name string, ownerUID types.UID, replicas int32, image string, labels map[string]string) {
	w.t.Helper()
	what := fmt.Sprintf("deployment %s with %d/%d ready replicas of %s", name, replicas, replicas, image)
	Eventually(w.t, rolloutTimeout, what, func(ctx context.Context) (bool, string, error) {
		d, err := w.kube.AppsV1().Deployments(w.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		var images []string
		for _, c := range d.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
		owner := metav1.GetControllerOf(d)
		s := d.Status
		seen := fmt.Sprintf("spec.replicas=%d images=%v replicas=%d updated=%d ready=%d observed=%d/%d controller=%v labels=%v",
			deref(d.Spec.Replicas), images, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.ObservedGeneration, d.Generation, owner, d.Spec.Template.Labels)
		done := deref(d.Spec.Replicas) == replicas && slices.Equal(images, []string{image}) &&
			s.ObservedGeneration == d.Generation && s.Replicas == replicas && s.UpdatedReplicas == replicas && s.ReadyReplicas == replicas &&
			owner != nil && owner.UID == ownerUID && hasLabels(d.Spec.Template.Labels, labels)
		return done, seen, nil
	})
}

// deploymentSelector is the label selector of Deployment name's pods.
func (w *walk) deploymentSelector(name string) string {
	w.t.Helper()
	d, err := w.kube.AppsV1().Deployments(w.ns).Get(w.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatalf("get deployment %s/%s: %v", w.ns, name, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		w.t.Fatalf("deployment %s/%s selector: %v", w.ns, name, err)
	}
	return sel.String()
}

// waitPodNamesInStatus waits until exactly n pods match selector, all
// Running on a kwok node and none terminating, and status.<field> of the
// resource lists their names: in sorted order when sorted is set, in any
// order otherwise.
func (w *walk) waitPodNamesInStatus(name, selector string, n int, field string, sorted bool) {
	w.t.Helper()
	what := fmt.Sprintf("%d pods Running (%s) and their names in %s status.%s", n, selector, name, field)
	Eventually(w.t, rolloutTimeout, what, func(ctx context.Context) (bool, string, error) {
		pods, err := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, "", err
		}
		var running, states []string
		for _, p := range pods.Items {
			states = append(states, fmt.Sprintf("%s=%s@%s", p.Name, p.Status.Phase, p.Spec.NodeName))
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
				running = append(running, p.Name)
			}
		}
		slices.Sort(running)
		obj, err := w.get(ctx, name)
		if err != nil {
			return false, "", err
		}
		names, _, err := unstructured.NestedStringSlice(obj.Object, "status", field)
		if err != nil {
			return false, "", fmt.Errorf("status.%s: %w", field, err)
		}
		if !sorted {
			names = slices.Sorted(slices.Values(names))
		}
		seen := fmt.Sprintf("pods %v; status.%s=%v", states, field, names)
		return len(pods.Items) == n && len(running) == n && slices.Equal(names, running), seen, nil
	})
}

// waitStatus waits until status.<field> of the resource satisfies ok.
func (w *walk) waitStatus(name, field, what string, ok func(v any) bool) {
	w.t.Helper()
	Eventually(w.t, rolloutTimeout, fmt.Sprintf("%s status.%s %s", name, field, what), func(ctx context.Context) (bool, string, error) {
		obj, err := w.get(ctx, name)
		if err != nil {
			return false, "", err
		}
		v, found, err := unstructured.NestedFieldNoCopy(obj.Object, "status", field)
		if err != nil || !found {
			return false, fmt.Sprintf("status %v", obj.Object["status"]), err
		}
		return ok(v), fmt.Sprintf("status.%s=%v", field, v), nil
	})
}

// waitEvent waits for an Event of type and reason, its message containing
// text, that the gateway recorded on the object with uid from source:
// "opgate" for its own, "opgate-handler" for a handler's.
func (w *walk) waitEvent(uid types.UID, source, eventType, reason, text string) {
	w.t.Helper()
	what := fmt.Sprintf("a %s event %s from %s on %s saying %q", eventType, reason, source, uid, text)
	Eventually(w.t, rolloutTimeout, what, func(ctx context.Context) (bool, string, error) {
		events, err := w.kube.CoreV1().Events(w.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(uid)})
		if err != nil {
			return false, "", err
		}
		var seen []string
		for _, e := range events.Items {
			seen = append(seen, fmt.Sprintf("%s/%s(%s): %s", e.Type, e.Reason, e.Source.Component, e.Message))
			if e.Type == eventType && e.Reason == reason && strings.Contains(e.Message, text) && e.Source.Component == source {
				return true, "", nil
			}
		}
		return false, strings.Join(seen, "; "), nil
	})
}

// waitProgress waits until the gateway's state annotation for operator
// shows the progress of callback satisfying ok (nil: no failure recorded).
func (w *walk) waitProgress(name, operator, callback, what string, ok func(p *state.Progress) bool) {
	w.t.Helper()
	key := "opgate.dev/state." + operator
	Eventually(w.t, rolloutTimeout, fmt.Sprintf("callback %s on %s: %s", callback, name, what), func(ctx context.Context) (bool, string, error) {
		obj, err := w.get(ctx, name)
		if err != nil {
			return false, "", err
		}
		s, err := state.Decode(obj.GetAnnotations()[key])
		if err != nil {
			return false, "", err
		}
		p := s.Progress[callback]
		return ok(p), fmt.Sprintf("%s=%s", key, obj.GetAnnotations()[key]), nil
	})
}

// deleteAndWaitGone deletes the resource and waits until it is gone (its
// delete callback done, the finalizer released), and the garbage collector
// removed its Deployment and the pods matching podSelector.
func (w *walk) deleteAndWaitGone(name, podSelector string) {
	w.t.Helper()
	if err := w.res.Delete(w.t.Context(), name, metav1.DeleteOptions{}); err != nil {
		w.t.Fatalf("delete %s %s/%s: %v", w.kind, w.ns, name, err)
	}
	Eventually(w.t, rolloutTimeout, name+", its Deployment and its pods to be gone", func(ctx context.Context) (bool, string, error) {
		obj, err := w.get(ctx, name)
		parentGone := isGone(err)
		if err != nil && !parentGone {
			return false, "", err
		}
		_, err = w.kube.AppsV1().Deployments(w.ns).Get(ctx, name, metav1.GetOptions{})
		deploymentGone := isGone(err)
		if err != nil && !deploymentGone {
			return false, "", err
		}
		pods, err := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: podSelector})
		if err != nil {
			return false, "", err
		}
		seen := fmt.Sprintf("%s gone=%t, deployment gone=%t, %d pods left", w.kind, parentGone, deploymentGone, len(pods.Items))
		if !parentGone {
			seen += fmt.Sprintf(" (finalizers %v, deletionTimestamp %v)", obj.GetFinalizers(), obj.GetDeletionTimestamp())
		}
		return parentGone && deploymentGone && len(pods.Items) == 0, seen, nil
	})
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitReconciled waits until the gateway reports the resource reconciled
// at its current generation (an operator with status.conditions: true).
func (w *walk) waitReconciled(name string) {
	w.t.Helper()
	Eventually(w.t, rolloutTimeout, name+" observedGeneration == generation and Reconciled=True", func(ctx context.Context) (bool, string, error) {
		obj, err := w.get(ctx, name)
		if err != nil {
			return false, "", err
		}
		og, _, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		seen := fmt.Sprintf("generation %d, observedGeneration %d, conditions %v", obj.GetGeneration(), og, conds)
		if og != obj.GetGeneration() {
			return false, seen, nil
		}
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == "Reconciled" && m["status"] == "True" {
				return true, "", nil
			}
		}
		return false, seen, nil
	})
}
