package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

var gadgets = schema.GroupVersionResource{Group: "test.opgate.dev", Version: "v1", Resource: "gadgets"}

func clusterRole(name string) map[string]any {
	return map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
		"metadata": map[string]any{"name": name},
		"rules":    []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"configmaps"}, "verbs": []any{"get"}}},
	}
}

// TestClusterScopedChildOfNamespacedParentIsTrackedPrunedAndDeleted: a
// ClusterRole child of a namespaced Widget is listed to sync, its changes
// trigger a sync, a sync prunes it, and it goes with its parent.
func TestClusterScopedChildOfNamespacedParentIsTrackedPrunedAndDeleted(t *testing.T) {
	ns := newNamespace(t)
	first, second := ns+"-first", ns+"-second"
	var onlyFirst atomic.Bool
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Event {
		case callbacks.EventCreate, callbacks.EventSync:
			if onlyFirst.Load() {
				return 200, map[string]any{"children": []any{clusterRole(first)}}
			}
			return 200, map[string]any{"children": []any{clusterRole(first), clusterRole(second)}}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "clusterkids", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
		}
	}))
	parent := createWidget(t, ns, "example", 1)
	const key = "rbac.authorization.k8s.io/v1/ClusterRole"
	eventually(t, 20*time.Second, func() error {
		syncs := syncedChildren(h, ns, key)
		if len(syncs) == 0 || !slices.Equal(syncs[len(syncs)-1], []string{first, second}) {
			return fmt.Errorf("syncs carried ClusterRole children %v, want the last to be [%s %s]", syncs, first, second)
		}
		return nil
	})
	for _, name := range []string{first, second} {
		cr, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cr.Labels[ownerUIDLabel] != string(parent.GetUID()) || len(cr.OwnerReferences) != 0 {
			t.Errorf("ClusterRole %s: labels %v, ownerReferences %v; want %s=<parent UID> and no (namespaced, never collected) owner",
				name, cr.Labels, cr.OwnerReferences, ownerUIDLabel)
		}
	}

	// A change of a child triggers a sync, which prunes the child it no longer wants.
	onlyFirst.Store(true)
	poke := []byte(`{"metadata":{"annotations":{"poked":"yes"}}}`)
	if _, err := kube(t).RbacV1().ClusterRoles().Patch(context.Background(), first, types.MergePatchType, poke, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if _, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), second, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ClusterRole %s not pruned (err %v)", second, err)
		}
		return nil
	})

	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "example")
	if _, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), first, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRole %s outlived its parent (err %v)", first, err)
	}
}

// TestNamespacedChildWithoutNamespaceUnderClusterScopedParentIsRefused: a
// cluster-scoped parent has no namespace to lend; such a child refuses the
// answer once instead of failing to apply forever.
func TestNamespacedChildWithoutNamespaceUnderClusterScopedParentIsRefused(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"children": []any{
		configMap(ns, "placed"),
		map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "homeless"}},
	}}))
	startGateway(t, operatorFor(t, "gadgets", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Watch = spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Gadget",
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"test": ns}}}
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	gadget := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.opgate.dev/v1", "kind": "Gadget",
		"metadata": map[string]any{"name": ns, "labels": map[string]any{"test": ns}},
		"spec":     map[string]any{"size": int64(1)},
	}}
	if _, err := dyn(t).Resource(gadgets).Create(context.Background(), gadget, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dyn(t).Resource(gadgets).Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	// Events of cluster-scoped objects live in the default namespace.
	eventually(t, 20*time.Second, func() error {
		for _, e := range events(t, metav1.NamespaceDefault, ns) {
			if e.Type == "Warning" && e.Reason == "ChildRefused" && strings.Contains(e.Message, "homeless") {
				return nil
			}
		}
		return fmt.Errorf("no Warning ChildRefused event naming the child without namespace")
	})
	eventually(t, 20*time.Second, func() error {
		g, err := dyn(t).Resource(gadgets).Get(context.Background(), ns, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if st := g.GetAnnotations()["opgate.dev/state.gadgets"]; !strings.Contains(st, `"x":true`) {
			return fmt.Errorf("state %s records no permanent failure yet", st)
		}
		return nil
	})
	if n := len(h.calls("create")); n != 1 {
		t.Errorf("create called %d times, want once: a refused child is a permanent error", n)
	}
	if _, err := getConfigMap(t, ns, "placed"); !apierrors.IsNotFound(err) {
		t.Errorf("a child of a refused answer was applied (err %v)", err)
	}
}

// An RBAC child named with a colon ("<ns>:reader", the usual convention),
// which the API server takes, is applied, and goes with its parent.
func TestRBACChildNamedWithAColonIsAppliedAndDeleted(t *testing.T) {
	ns := newNamespace(t)
	name := ns + ":reader"
	h := newHandler(t, ok(map[string]any{"children": []any{clusterRole(name)}}))
	startGateway(t, operatorFor(t, "colonkids", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	parent := createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error {
		cr, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cr.Labels[ownerUIDLabel] != string(parent.GetUID()) {
			return fmt.Errorf("ClusterRole %s labels %v, want %s=<parent UID>", name, cr.Labels, ownerUIDLabel)
		}
		return nil
	})
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if _, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ClusterRole %s not deleted with its parent (err %v)", name, err)
		}
		return nil
	})
}
