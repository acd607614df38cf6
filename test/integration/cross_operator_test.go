package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// twoOperatorsSharingAChild starts one gateway running operator crossx
// (Widget) and operator crossy (PlainWidget), from files or, with
// registry, as WebhookOperator objects; both answer the
// ConfigMap "shared" in ns, the value telling who wrote it; Y retries a
// refused answer every 100-200ms. It creates X's parent "a", waits until
// the ConfigMap is a's, then creates Y's parent "b".
func twoOperatorsSharingAChild(t *testing.T, ns string, registry bool) (a *unstructured.Unstructured, hy *handler) {
	t.Helper()
	answer := func(v string) func(callbacks.Request) (int, any) {
		return ok(map[string]any{"children": []any{map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "shared"},
			"data": map[string]any{"v": v},
		}}})
	}
	hx, hy := newHandler(t, answer("x")), newHandler(t, answer("y"))
	sync := []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
	opx := operatorFor(t, "crossx", ns, hx.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = sync
	})
	opy := operatorFor(t, "crossy", ns, hy.URL, func(s *spec.OperatorSpec) {
		s.Watch.Kind = "PlainWidget"
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = sync
		s.Retry = &spec.RetrySpec{InitialDelay: &spec.Duration{Duration: 100 * time.Millisecond}, MaxDelay: &spec.Duration{Duration: 200 * time.Millisecond}}
	})
	if registry {
		startGateway(t)
		for _, op := range []*spec.WebhookOperator{opx, opy} {
			registerOperator(t, op)
			waitRunning(t, op.Name, 1)
		}
	} else {
		startGateway(t, opx, opy)
	}
	a = createWidget(t, ns, "a", 1)
	eventually(t, 20*time.Second, func() error { return sharedIs(t, ns, a.GetUID(), "crossx", "x") })
	b := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.opgate.dev/v1", "kind": "PlainWidget",
		"metadata": map[string]any{"name": "b", "namespace": ns}, "spec": map[string]any{"size": int64(1)}}}
	if _, err := dyn(t).Resource(plainWidgets).Namespace(ns).Create(context.Background(), b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return a, hy
}

// sharedIs says whether the ConfigMap "shared" is controlled by the parent
// of UID owner, labelled for operator and holds value.
func sharedIs(t *testing.T, ns string, owner types.UID, operator, value string) error {
	cm, err := getConfigMap(t, ns, "shared")
	if err != nil {
		return err
	}
	return sharedIsObject(cm, owner, operator, value)
}

func sharedIsObject(cm *corev1.ConfigMap, owner types.UID, operator, value string) error {
	ref := metav1.GetControllerOf(cm)
	if ref == nil || ref.UID != owner || cm.Labels["opgate.dev/operator"] != operator || cm.Data["v"] != value {
		return fmt.Errorf("ConfigMap shared has controller %v, label %s=%q, v=%q; want controller %s, operator %s, v=%q",
			ref, "opgate.dev/operator", cm.Labels["opgate.dev/operator"], cm.Data["v"], owner, operator, value)
	}
	return nil
}

// TestChildOfAnotherOperatorsParentIsNotTaken: two operators of one
// gateway answer the same child; the second may not take it from the
// first one's existing parent (both apply as field manager opgate, so the
// apply would move it silently, and each operator's filtered watch losing
// it would make the two take it from each other for ever). The refusal is
// retried, and each retry leaves the child untouched. Operators from files
// and WebhookOperator objects alike.
func TestChildOfAnotherOperatorsParentIsNotTaken(t *testing.T) {
	t.Run("files", func(t *testing.T) { childOfAnotherOperatorsParentIsNotTaken(t, false) })
	t.Run("registry", func(t *testing.T) { childOfAnotherOperatorsParentIsNotTaken(t, true) })
}

func childOfAnotherOperatorsParentIsNotTaken(t *testing.T, registry bool) {
	ns := newNamespace(t)
	a, hy := twoOperatorsSharingAChild(t, ns, registry)
	eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "b", "Warning", "ChildOwnedElsewhere") })
	before, err := getConfigMap(t, ns, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if err := sharedIsObject(before, a.GetUID(), "crossx", "x"); err != nil {
		t.Fatalf("after Y's answer was refused: %v", err)
	}
	for _, e := range events(t, ns, "b") {
		if e.Reason == "ChildOwnedElsewhere" && !(strings.Contains(e.Message, "crossx") && strings.Contains(e.Message, ns+"/a")) {
			t.Errorf("refusal %q names neither operator crossx nor its parent %s/a", e.Message, ns)
		}
	}
	// Several more of Y's retries, each refused: the child stays X's and
	// is not written at all (a flip and back would change its version).
	seen := len(hy.calls("sync"))
	eventually(t, 20*time.Second, func() error {
		if n := len(hy.calls("sync")); n < seen+5 {
			return fmt.Errorf("%d sync calls of Y since its first refusal, want 5", n-seen)
		}
		return nil
	})
	after, err := getConfigMap(t, ns, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if err := sharedIsObject(after, a.GetUID(), "crossx", "x"); err != nil {
		t.Fatalf("after 5 more of Y's answers: %v", err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("ConfigMap shared written while Y's answers were refused: resourceVersion %s, was %s", after.ResourceVersion, before.ResourceVersion)
	}
}

// TestChildOfAnotherOperatorsGoneParentIsAdopted: once the parent owning
// the child is gone (no garbage collector on envtest: the child stays),
// the refused parent of the other operator adopts it on its next retry,
// as a child of a gone parent of its own operator would be.
func TestChildOfAnotherOperatorsGoneParentIsAdopted(t *testing.T) {
	ns := newNamespace(t)
	twoOperatorsSharingAChild(t, ns, false)
	eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "b", "Warning", "ChildOwnedElsewhere") })
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		b, err := dyn(t).Resource(plainWidgets).Namespace(ns).Get(context.Background(), "b", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return sharedIs(t, ns, b.GetUID(), "crossy", "y")
	})
}

// TestChildOfAnotherOperatorsParentOutsideItsSelectionIsNotTaken: X's
// parent a leaves X's selection (its label changed) and keeps its child, as
// docs/contract.md says; Y's parent b answers the same child. X's cache no
// longer holds a, yet a exists: the child is not adoptable, and Y's answer
// is refused (ChildOwnedElsewhere, naming a), as within one operator.
func TestChildOfAnotherOperatorsParentOutsideItsSelectionIsNotTaken(t *testing.T) {
	ns := newNamespace(t)
	answer := func(v string) func(callbacks.Request) (int, any) {
		return ok(map[string]any{"children": []any{map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "shared"},
			"data": map[string]any{"v": v},
		}}})
	}
	hx, hy := newHandler(t, answer("x")), newHandler(t, answer("y"))
	sync := []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
	opx := operatorFor(t, "unselx", ns, hx.URL, func(s *spec.OperatorSpec) {
		s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = sync
	})
	opy := operatorFor(t, "unsely", ns, hy.URL, func(s *spec.OperatorSpec) {
		s.Watch.Kind = "PlainWidget"
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = sync
		s.Retry = &spec.RetrySpec{InitialDelay: &spec.Duration{Duration: 100 * time.Millisecond}, MaxDelay: &spec.Duration{Duration: 200 * time.Millisecond}}
	})
	startGateway(t, opx, opy)
	w := widget(ns, "a", 1)
	w.SetLabels(map[string]string{"team": "a"})
	a, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error { return sharedIs(t, ns, a.GetUID(), "unselx", "x") })
	updateWidget(t, ns, "a", func(u *unstructured.Unstructured) { u.SetLabels(map[string]string{"team": "b"}) })
	eventually(t, 20*time.Second, func() error { // X let a go: its cache no longer holds it
		got, err := getWidget(t, ns, "a")
		if err != nil {
			return err
		}
		if hasFinalizer(got, "opgate.dev/unselx") {
			return fmt.Errorf("parent a not let go by X yet")
		}
		return nil
	})
	b := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.opgate.dev/v1", "kind": "PlainWidget",
		"metadata": map[string]any{"name": "b", "namespace": ns}, "spec": map[string]any{"size": int64(1)}}}
	if _, err := dyn(t).Resource(plainWidgets).Namespace(ns).Create(context.Background(), b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Until Y's answer is refused, or the child changed hands.
	eventually(t, 20*time.Second, func() error {
		if sharedIs(t, ns, a.GetUID(), "unselx", "x") != nil {
			return nil
		}
		return hasEvent(t, ns, "b", "Warning", "ChildOwnedElsewhere")
	})
	if err := sharedIs(t, ns, a.GetUID(), "unselx", "x"); err != nil {
		t.Fatalf("parent a exists (outside X's selection), yet Y's parent took its child: %v", err)
	}
	for _, e := range events(t, ns, "b") {
		if e.Reason == "ChildOwnedElsewhere" && !strings.Contains(e.Message, ns+"/a") {
			t.Errorf("refusal %q does not name the parent %s/a", e.Message, ns)
		}
	}
}
