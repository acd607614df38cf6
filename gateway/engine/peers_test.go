package engine

import (
	"context"
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// peerController is a controller of operator name with ConfigMap children
// whose caches hold parents and children, running as far as its peers can
// tell (its caches synced; never started).
func peerController(t *testing.T, name string, parents, children []*unstructured.Unstructured) *Controller {
	t.Helper()
	inf := func(indexers cache.Indexers, objs []*unstructured.Unstructured) map[string]cache.SharedIndexInformer {
		i := cache.NewSharedIndexInformer(&cache.ListWatch{}, &unstructured.Unstructured{}, 0, indexers)
		for _, o := range objs {
			if err := i.GetIndexer().Add(o); err != nil {
				t.Fatal(err)
			}
		}
		return map[string]cache.SharedIndexInformer{"": i}
	}
	cm := &meta.RESTMapping{GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}}
	widget := &meta.RESTMapping{Resource: schema.GroupVersionResource{Version: "v1", Resource: "widgets"},
		GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "Widget"}, Scope: meta.RESTScopeNamespace}
	var live []runtime.Object // the API server holds the cached parents
	for _, p := range parents {
		live = append(live, p)
	}
	c := &Controller{
		op:       &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: name}},
		parent:   &watched{mapping: widget, informers: inf(cache.Indexers{uidIndex: indexByUID}, parents)},
		children: []childKind{{watched: &watched{mapping: cm, informers: inf(cache.Indexers{}, children)}}},
	}
	c.Dynamic = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), live...)
	c.running.Store(true)
	return c
}

func testObject(kind, ns, name, uid string, owner *unstructured.Unstructured) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion("v1")
	o.SetKind(kind)
	o.SetNamespace(ns)
	o.SetName(name)
	o.SetUID(types.UID(uid))
	if owner != nil {
		yes := true
		o.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: owner.GetAPIVersion(), Kind: owner.GetKind(), Name: owner.GetName(), UID: owner.GetUID(), Controller: &yes}})
	}
	return o
}

// TestChildOwnerFindsAnotherOperatorsChildOfAnExistingParent: the lookup
// names the other operator holding the child, and its parent only while
// that parent exists,
// never the asking operator itself, never another kind, and no longer once
// the other operator stopped.
func TestChildOwnerFindsAnotherOperatorsChildOfAnExistingParent(t *testing.T) {
	a := testObject("Widget", "ns", "a", "uid-a", nil)
	gone := testObject("Widget", "ns", "gone", "uid-gone", nil)
	x := peerController(t, "x", []*unstructured.Unstructured{a}, []*unstructured.Unstructured{
		testObject("ConfigMap", "ns", "shared", "cm-1", a),
		testObject("ConfigMap", "ns", "orphan", "cm-2", gone),
	})
	y := peerController(t, "y", nil, nil)
	var ps peers
	ps.add(x)
	ps.add(y)
	cm := schema.GroupKind{Kind: "ConfigMap"}

	ctx := context.Background()
	op, parent, ok, _ := ps.ChildOwner(ctx, "y", "", cm, "ns/shared")
	if !ok || op != "x" || parent.GetUID() != a.GetUID() {
		t.Errorf("ChildOwner(y, ns/shared) = %q, %v, %v; want operator x, parent ns/a", op, parent, ok)
	}
	if op, parent, held, _ := ps.ChildOwner(ctx, "y", "", cm, "ns/orphan"); !held || op != "x" || parent != nil {
		t.Errorf("ChildOwner(y, ns/orphan) = %q, %v, %v; want held by operator x, no parent (adoptable: its parent is gone)", op, parent, held)
	}
	if op, _, ok, _ := ps.ChildOwner(ctx, "x", "", cm, "ns/shared"); ok {
		t.Errorf("operator x asking found its own child as operator %q's", op)
	}
	if op, _, ok, _ := ps.ChildOwner(ctx, "y", "", schema.GroupKind{Group: "apps", Kind: "ConfigMap"}, "ns/shared"); ok {
		t.Errorf("a child of another kind found as operator %q's", op)
	}
	ps.remove(x)
	if op, _, ok, _ := ps.ChildOwner(ctx, "y", "", cm, "ns/shared"); ok {
		t.Errorf("a stopped operator's child found as operator %q's", op)
	}
}

// TestChildOwnerLeavesAPeerWhoseCachesAreFillingToTheAPIRead: at a start,
// a leader takeover or an edit's restart an operator joins the peers before
// its caches synced, and its child cache may fill before its parent cache:
// a child it holds whose parent it has not listed yet would look adoptable.
// Such a peer is not asked; the caller reads the child from the API server,
// which shows the other operator's label (ChildExists, docs/contract.md).
func TestChildOwnerLeavesAPeerWhoseCachesAreFillingToTheAPIRead(t *testing.T) {
	a := testObject("Widget", "ns", "a", "uid-a", nil)
	// x's parent cache has not listed a yet; its child cache has the child.
	x := peerController(t, "x", nil, []*unstructured.Unstructured{testObject("ConfigMap", "ns", "shared", "cm-1", a)})
	x.running.Store(false)
	var ps peers
	ps.add(x)
	if op, parent, held, _ := ps.ChildOwner(context.Background(), "y", "", schema.GroupKind{Kind: "ConfigMap"}, "ns/shared"); held {
		t.Errorf("ChildOwner(y, ns/shared) = %q, %v, held; want not held: operator x's caches have not synced (its parent ns/a may exist)", op, parent)
	}
}

// TestChildOwnerFindsAnotherOperatorsParentOutsideItsSelection: a peer's
// child whose controlling parent the peer's cache does not hold has that
// parent read from the API server: one that left the peer's selection
// still exists and keeps its children (not adoptable); one gone, or
// created again with another UID, lets it be adopted; a child tracked by
// label names no parent to read; one that moved to the answering
// operator (relabelled) is the answering parent's own. A read that fails
// is an error, not "adoptable".
func TestChildOwnerFindsAnotherOperatorsParentOutsideItsSelection(t *testing.T) {
	away := testObject("Widget", "ns", "away", "uid-away", nil)
	again := testObject("Widget", "ns", "again", "uid-again-2", nil)
	byLabel := testObject("ConfigMap", "ns", "c", "cm-1", nil)
	byLabel.SetLabels(map[string]string{"opgate.dev/owner-uid": "uid-away"})
	for _, tt := range []struct {
		name      string
		child     *unstructured.Unstructured
		getErr    error
		answering types.UID // the parent answering the child
		parent    string    // the parent ChildOwner names; "": adoptable
		reads     int
		err       bool
	}{
		{name: "its parent out of the selection", child: testObject("ConfigMap", "ns", "c", "cm-1", away), parent: "away", reads: 1},
		{name: "its parent out of the selection answers it through this operator", child: testObject("ConfigMap", "ns", "c", "cm-1", away), answering: "uid-away"},
		{name: "its parent gone", child: testObject("ConfigMap", "ns", "c", "cm-1", testObject("Widget", "ns", "gone", "uid-gone", nil)), reads: 1},
		{name: "its parent created again", child: testObject("ConfigMap", "ns", "c", "cm-1", testObject("Widget", "ns", "again", "uid-again-1", nil)), reads: 1},
		{name: "tracked by label", child: byLabel},
		{name: "its parent unreadable", child: testObject("ConfigMap", "ns", "c", "cm-1", away), getErr: errors.New("connection refused"), reads: 1, err: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := peerController(t, "x", nil, []*unstructured.Unstructured{tt.child})
			dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), away, again)
			if tt.getErr != nil {
				dyn.PrependReactor("get", "widgets", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tt.getErr })
			}
			x.Dynamic = dyn
			var ps peers
			ps.add(x)
			op, parent, held, err := ps.ChildOwner(context.Background(), "y", tt.answering, schema.GroupKind{Kind: "ConfigMap"}, "ns/c")
			if reads := len(dyn.Actions()); reads != tt.reads {
				t.Errorf("%d reads from the API server, want %d", reads, tt.reads)
			}
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want one: %v", err, tt.err)
			}
			if tt.err {
				if f := failure.As(err); f.Class != failure.Temporary || f.Reason != ReasonChildOwnerUnreadable {
					t.Errorf("error %v: %s %s, want a temporary %s", err, f.Class, f.Reason, ReasonChildOwnerUnreadable)
				}
				return
			}
			if !held || op != "x" {
				t.Fatalf("ChildOwner = %q, held %v; want held by operator x", op, held)
			}
			got := ""
			if parent != nil {
				got = parent.GetName()
			}
			if got != tt.parent {
				t.Errorf("parent %q, want %q", got, tt.parent)
			}
		})
	}
}
