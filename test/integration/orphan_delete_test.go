package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// TestOrphanDeletionKeepsLabelOwnedChildrenAndUnlabelsThem: a parent deleted
// with propagationPolicy Orphan (kubectl delete --cascade=orphan) keeps its
// label-owned children (here a cluster-scoped ClusterRole), as the garbage
// collector keeps the ownerReference ones; the gateway removes its owner
// label from them, as the collector removes the ownerReference. That holds
// also when the collector has removed the orphan finalizer before the
// gateway lets the parent go (the delete callback failing meanwhile), and
// when the gateway restarted in between, and when it is gone before the
// first pass that sees the parent deleting. A delete without Orphan still
// deletes them. envtest runs no garbage collector: the orphan finalizer
// stays unless the test removes it as the collector would.
func TestOrphanDeletionKeepsLabelOwnedChildrenAndUnlabelsThem(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    metav1.DeletionPropagation
		gcFirst   bool // the collector removes the orphan finalizer while the delete callback fails
		restart   bool // and the gateway restarts meanwhile
		inPass    bool // the collector removes it while a pass of the parent's update still runs
		wantStays bool
	}{
		{name: "orphan", policy: metav1.DeletePropagationOrphan, wantStays: true},
		{name: "orphan-finalizer-gone-first", policy: metav1.DeletePropagationOrphan, gcFirst: true, wantStays: true},
		{name: "orphan-finalizer-gone-over-restart", policy: metav1.DeletePropagationOrphan, gcFirst: true, restart: true, wantStays: true},
		{name: "orphan-finalizer-gone-before-the-first-deleting-pass", policy: metav1.DeletePropagationOrphan, inPass: true, wantStays: true},
		{name: "background", policy: metav1.DeletePropagationBackground},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			role := ns + "-role"
			t.Cleanup(func() {
				_ = kube(t).RbacV1().ClusterRoles().Delete(context.Background(), role, metav1.DeleteOptions{})
				removeFinalizers(t, ns, "example")
			})
			var failing atomic.Bool
			failing.Store(tc.gcFirst)
			unblock := make(chan struct{})
			var unblockOnce sync.Once
			letUpdateEnd := func() { unblockOnce.Do(func() { close(unblock) }) }
			t.Cleanup(letUpdateEnd)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				switch {
				case req.Event == callbacks.EventCreate:
					return 200, map[string]any{"children": []any{clusterRole(role)}}
				case req.Event == callbacks.EventUpdate:
					<-unblock
				case req.Event == callbacks.EventDelete && failing.Load():
					return 200, map[string]any{"error": map[string]any{"message": "backup running"}}
				}
				return 200, nil
			})
			name := "orphan" + fmt.Sprint(len(tc.name))
			op := operatorFor(t, name, ns, h.URL, func(s *spec.OperatorSpec) {
				s.Children = []spec.ChildSpec{{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}}
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
					{ID: "cleanup", Events: []spec.Event{spec.EventDelete},
						Retry: &spec.RetrySpec{InitialDelay: &spec.Duration{Duration: 200 * time.Millisecond}, MaxDelay: &spec.Duration{Duration: 500 * time.Millisecond}}},
				}
			})
			stop := startGateway(t, op)
			createWidget(t, ns, "example", 1)
			eventually(t, 20*time.Second, func() error {
				_, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), role, metav1.GetOptions{})
				return err
			})
			if tc.inPass {
				// The pass calling resize holds the object's key: the
				// deletion's pass comes after it, when the informer's cache
				// no longer shows the orphan finalizer.
				updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
					_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
				})
				eventually(t, 20*time.Second, func() error { return called(h, "resize", 1) })
			}
			policy := tc.policy
			if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
				t.Fatal(err)
			}
			if tc.inPass {
				dropFinalizer(t, ns, "example", metav1.FinalizerOrphanDependents)
				letUpdateEnd()
			}
			if tc.gcFirst {
				eventually(t, 20*time.Second, func() error {
					if err := called(h, "cleanup", 1); err != nil {
						return err
					}
					w, err := getWidget(t, ns, "example")
					if err != nil {
						return err
					}
					if st := w.GetAnnotations()["opgate.dev/state."+name]; !strings.Contains(st, `"p":`) {
						return fmt.Errorf("the failed delete callback is not recorded yet: state %s", st)
					}
					return nil
				})
				if tc.restart {
					stop()
				}
				dropFinalizer(t, ns, "example", metav1.FinalizerOrphanDependents) // as the garbage collector does once it orphaned the dependents
				if tc.restart {
					startGateway(t, op)
				}
				failing.Store(false)
			}
			eventually(t, 20*time.Second, func() error {
				w, err := getWidget(t, ns, "example")
				if err == nil && hasFinalizer(w, "opgate.dev/"+name) {
					return fmt.Errorf("finalizer still held; finalizers %v", w.GetFinalizers())
				}
				return nil
			})
			if !tc.wantStays {
				eventually(t, 20*time.Second, func() error {
					if _, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), role, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
						return fmt.Errorf("ClusterRole %s still there (err %v)", role, err)
					}
					return nil
				})
				return
			}
			cr, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), role, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("parent deleted with propagationPolicy Orphan, yet its label-owned ClusterRole %s was deleted: %v", role, err)
			}
			if cr.DeletionTimestamp != nil {
				t.Fatalf("parent deleted with propagationPolicy Orphan, yet its label-owned ClusterRole %s is being deleted", role)
			}
			if v, set := cr.Labels["opgate.dev/owner-uid"]; set {
				t.Errorf("orphaned ClusterRole still names its deleted parent: opgate.dev/owner-uid=%s", v)
			}
			if cr.Labels["opgate.dev/operator"] != name {
				t.Errorf("orphaned ClusterRole lost its operator label: labels %v", cr.Labels)
			}
		})
	}
}

// dropFinalizer removes finalizer f from a widget, as its owner would; a
// write of the gateway's in between makes it try again.
func dropFinalizer(t *testing.T, ns, name, f string) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		w, err := getWidget(t, ns, name)
		if err != nil {
			return err
		}
		rest := slices.DeleteFunc(w.GetFinalizers(), func(s string) bool { return s == f })
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": rest, "resourceVersion": w.GetResourceVersion()}})
		if err != nil {
			return err
		}
		_, err = dyn(t).Resource(widgets).Namespace(ns).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
}
