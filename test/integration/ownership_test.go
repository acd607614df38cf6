package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

const ownerUIDLabel = "opgate.dev/owner-uid"

func configMap(namespace, name string) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": namespace},
		"data":     map[string]any{"owner": name},
	}
}

// syncedChildren lists, per sync request for parents in namespace ns, the
// names of the children of kind key it carried.
func syncedChildren(h *handler, ns, key string) [][]string {
	var out [][]string
	for _, r := range h.calls("sync") {
		if r.Object.GetNamespace() != ns {
			continue
		}
		var names []string
		for n := range r.Children[key] {
			names = append(names, n)
		}
		slices.Sort(names)
		out = append(out, names)
	}
	return out
}

func getConfigMap(t *testing.T, ns, name string) (*corev1.ConfigMap, error) {
	t.Helper()
	return kube(t).CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
}

// TestCrossNamespaceChildrenBelongOnlyToTheirParent: two parents in two
// namespaces each keep a child in a third. Neither prunes nor sees the
// other's, nor one left by a deleted predecessor; deleting a parent deletes
// its children only.
func TestCrossNamespaceChildrenBelongOnlyToTheirParent(t *testing.T) {
	nsA, nsB, shared := newNamespace(t), newNamespace(t), newNamespace(t)
	childOf := func(parentNS string) string { return "of-" + parentNS }
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Event {
		case callbacks.EventCreate, callbacks.EventSync:
			return 200, map[string]any{"children": []any{configMap(shared, childOf(req.Object.GetNamespace()))}}
		}
		return 200, nil
	})
	op := operatorFor(t, "crossns", nsA, h.URL, func(s *spec.OperatorSpec) {
		s.Watch.Namespaces = []string{nsA, nsB}
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true}}
		s.ResyncPeriod = &spec.Duration{Duration: time.Second}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
		}
	})
	// A child left behind by a deleted parent of the same name: its UID is
	// not the new parent's, so nobody may list or prune it.
	stale := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "left-behind", Namespace: shared, Labels: map[string]string{
		"opgate.dev/operator": "crossns", ownerUIDLabel: "00000000-0000-0000-0000-000000000000",
	}}}
	if _, err := kube(t).CoreV1().ConfigMaps(shared).Create(context.Background(), stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startGateway(t, op)
	a, b := createWidget(t, nsA, "a", 1), createWidget(t, nsB, "b", 1)

	uids := map[string]types.UID{}
	for _, ns := range []string{nsA, nsB} {
		eventually(t, 20*time.Second, func() error {
			cm, err := getConfigMap(t, shared, childOf(ns))
			if err != nil {
				return err
			}
			uids[ns] = cm.UID
			return nil
		})
	}
	// Several sync rounds of both parents (resync every second).
	eventually(t, 30*time.Second, func() error {
		for _, ns := range []string{nsA, nsB} {
			if n := len(syncedChildren(h, ns, "v1/ConfigMap")); n < 4 {
				return fmt.Errorf("%d syncs of the parent in %s, want 4", n, ns)
			}
		}
		return nil
	})
	parentUID := map[string]types.UID{nsA: a.GetUID(), nsB: b.GetUID()}
	for _, ns := range []string{nsA, nsB} {
		own := shared + "/" + childOf(ns)
		sawOwn := false
		for i, names := range syncedChildren(h, ns, "v1/ConfigMap") {
			for _, n := range names {
				if n != own {
					t.Errorf("sync %d of the parent in %s carried child %s, want only its own %s", i, ns, n, own)
				}
				sawOwn = true
			}
		}
		if !sawOwn {
			t.Errorf("no sync of the parent in %s carried its own child %s", ns, own)
		}
		cm, err := getConfigMap(t, shared, childOf(ns))
		if err != nil || cm.UID != uids[ns] || cm.DeletionTimestamp != nil {
			t.Fatalf("child of the parent in %s was deleted or re-created (err %v): the other parent pruned it", ns, err)
		}
		if got := cm.Labels[ownerUIDLabel]; got != string(parentUID[ns]) {
			t.Errorf("child %s labelled %s=%q, want its parent's UID %q", cm.Name, ownerUIDLabel, got, parentUID[ns])
		}
	}
	if _, err := getConfigMap(t, shared, "left-behind"); err != nil {
		t.Errorf("a child of a deleted predecessor was pruned (err %v): it is no parent's own", err)
	}
	for _, w := range []struct{ ns, name string }{{nsA, "a"}, {nsB, "b"}} {
		got, err := getWidget(t, w.ns, w.name)
		if err != nil || !hasFinalizer(got, "opgate.dev/crossns") {
			t.Errorf("widget %s/%s holds no finalizer (err %v): the gateway must delete its cross-namespace children itself", w.ns, w.name, err)
		}
	}

	// A user strips the owner label: the parent's next sync claims the child back.
	patch := []byte(`{"metadata":{"labels":{"` + ownerUIDLabel + `":null}}}`)
	if _, err := kube(t).CoreV1().ConfigMaps(shared).Patch(context.Background(), childOf(nsA), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		cm, err := getConfigMap(t, shared, childOf(nsA))
		if err != nil {
			return err
		}
		if cm.UID != uids[nsA] {
			return fmt.Errorf("child re-created instead of re-labelled")
		}
		if cm.Labels[ownerUIDLabel] != string(a.GetUID()) {
			return fmt.Errorf("owner label not restored: %v", cm.Labels)
		}
		return nil
	})

	// Deleting parent A deletes A's child, and only it.
	if err := dyn(t).Resource(widgets).Namespace(nsA).Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, nsA, "a")
	if _, err := getConfigMap(t, shared, childOf(nsA)); !apierrors.IsNotFound(err) {
		t.Errorf("child of the deleted parent is still there (err %v)", err)
	}
	if cm, err := getConfigMap(t, shared, childOf(nsB)); err != nil || cm.UID != uids[nsB] || cm.DeletionTimestamp != nil {
		t.Errorf("child of the other parent was deleted with the first (err %v)", err)
	}
	if _, err := getConfigMap(t, shared, "left-behind"); err != nil {
		t.Errorf("a child of another parent was deleted with the first (err %v)", err)
	}
}

// TestChildInMissingNamespaceIsRetriedUntilItExists: the API server refuses
// a child in a namespace that does not exist; that is temporary, reported
// by name, and the child is created once the namespace is.
func TestChildInMissingNamespaceIsRetriedUntilItExists(t *testing.T) {
	ns := newNamespace(t)
	later := ns + "-later"
	h := newHandler(t, ok(map[string]any{"children": []any{configMap(later, "cfg")}}))
	startGateway(t, operatorFor(t, "laterns", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "NamespaceNotFound") })
	if _, err := kube(t).CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: later}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		_, err := getConfigMap(t, later, "cfg")
		return err
	})
}

// TestChildOfAnotherParentIsNotTaken: two parents answer the same child;
// the second may not take it over (one field manager applies for both, so
// server-side apply would move it silently and the two would fight).
func TestChildOfAnotherParentIsNotTaken(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"children": []any{configMap(ns, "contested")}}))
	startGateway(t, operatorFor(t, "contest", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	first := createWidget(t, ns, "first", 1)
	eventually(t, 20*time.Second, func() error {
		cm, err := getConfigMap(t, ns, "contested")
		if err != nil {
			return err
		}
		if ref := metav1.GetControllerOf(cm); ref == nil || ref.UID != first.GetUID() {
			return fmt.Errorf("contested child not controlled by the first parent: %v", cm.OwnerReferences)
		}
		return nil
	})
	createWidget(t, ns, "second", 1)
	eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "second", "Warning", "ChildOwnedElsewhere") })
	cm, err := getConfigMap(t, ns, "contested")
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(cm); ref == nil || ref.UID != first.GetUID() || len(cm.OwnerReferences) != 1 {
		t.Errorf("the second parent took the first one's child: ownerReferences %v", cm.OwnerReferences)
	}
}

// TestChildOfAParentOutsideTheSelectionIsNotTaken: a parent that leaves
// the operator's selection (its label changed) still exists and keeps its
// children (docs/contract.md, "Children"); another parent whose handler
// answers the same child may not take it over, though the gateway no
// longer watches its owner.
func TestChildOfAParentOutsideTheSelectionIsNotTaken(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"children": []any{configMap(ns, "contested")}}))
	startGateway(t, operatorFor(t, "unselected", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	create := func(name string) *unstructured.Unstructured {
		w := widget(ns, name, 1)
		w.SetLabels(map[string]string{"team": "a"})
		out, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := create("first")
	eventually(t, 20*time.Second, func() error {
		cm, err := getConfigMap(t, ns, "contested")
		if err != nil {
			return err
		}
		if ref := metav1.GetControllerOf(cm); ref == nil || ref.UID != first.GetUID() {
			return fmt.Errorf("contested child not controlled by the first parent: %v", cm.OwnerReferences)
		}
		return nil
	})
	updateWidget(t, ns, "first", func(u *unstructured.Unstructured) { u.SetLabels(map[string]string{"team": "b"}) })
	eventually(t, 20*time.Second, func() error {
		got, err := getWidget(t, ns, "first")
		if err != nil {
			return err
		}
		if hasFinalizer(got, "opgate.dev/unselected") {
			return fmt.Errorf("first parent not let go yet")
		}
		return nil
	})
	create("second")
	eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "second", "Warning", "ChildOwnedElsewhere") })
	cm, err := getConfigMap(t, ns, "contested")
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(cm); ref == nil || ref.UID != first.GetUID() || len(cm.OwnerReferences) != 1 {
		t.Errorf("the second parent took the child of a parent outside the selection: ownerReferences %v", cm.OwnerReferences)
	}
}

// TestChildrenByLabelStayWhileTheDeleteCallbackFails: children the gateway
// deletes itself go only once the delete round is over; a permanently
// failing delete callback keeps them (and the parent) until the user
// releases the parent, which deletes them too.
func TestChildrenByLabelStayWhileTheDeleteCallbackFails(t *testing.T) {
	ns := newNamespace(t)
	shared := newNamespace(t)
	h := newHandler(t, failDeletePermanently(map[string]any{"children": []any{configMap(shared, "kept")}}))
	startGateway(t, operatorFor(t, "stuckkids", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error {
		_, err := getConfigMap(t, shared, "kept")
		return err
	})
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error { return stateSettled(t, ns, "example", "stuckkids") })
	if cm, err := getConfigMap(t, shared, "kept"); err != nil || cm.DeletionTimestamp != nil {
		t.Fatalf("child deleted while the delete callback fails (err %v)", err)
	}
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		w.SetAnnotations(map[string]string{"opgate.dev/release-finalizer": "true"})
	})
	waitWidgetGone(t, ns, "example")
	if _, err := getConfigMap(t, shared, "kept"); !apierrors.IsNotFound(err) {
		t.Errorf("child of a released parent is still there (err %v)", err)
	}
}
