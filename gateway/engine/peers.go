package engine

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// ChildOwners tells a controller which other operator of the gateway owns
// a child: each operator's child cache holds only its own (its
// opgate.dev/operator label), and every operator applies as the same field
// manager, so without asking, one operator's apply would silently take
// another's child.
type ChildOwners interface {
	// ChildOwner returns the operator other than self, its caches synced,
	// whose cache holds the child of kind gk under informer key key
	// (held), and the parent of that operator that owns it, while that
	// parent still exists, outside that operator's selection too (nil
	// otherwise: the child is adoptable). err: that parent could not be
	// read.
	ChildOwner(ctx context.Context, self string, answering types.UID, gk schema.GroupKind, key string) (operator string, parent *unstructured.Unstructured, held bool, err error)
}

// peers are the gateway's running controllers, an immutable snapshot
// replaced whole when one starts or stops. Workers read it without a lock:
// the manager holds its own while it stops a controller and waits for its
// workers, which may be in ChildOwner.
type peers struct {
	mu  sync.Mutex // orders the writers only
	cur atomic.Pointer[[]*Controller]
}

func (ps *peers) add(c *Controller) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var next []*Controller
	if cur := ps.cur.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, c)
	ps.cur.Store(&next)
}

func (ps *peers) remove(c *Controller) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if cur := ps.cur.Load(); cur != nil {
		next := slices.DeleteFunc(slices.Clone(*cur), func(o *Controller) bool { return o == c })
		ps.cur.Store(&next)
	}
}

// ChildOwner reads the other controllers' informer caches, which are safe
// to read concurrently. A controller joins the peers before its caches
// synced (manager.runController), and its child cache may fill before its
// parent cache: a child it holds would look adoptable while its parent is
// not listed yet. Such a controller is not asked, so the caller reads the
// child from the API server, whose operator label refuses it (ChildExists).
func (ps *peers) ChildOwner(ctx context.Context, self string, answering types.UID, gk schema.GroupKind, key string) (string, *unstructured.Unstructured, bool, error) {
	cur := ps.cur.Load()
	if cur == nil {
		return "", nil, false, nil
	}
	for _, c := range *cur {
		if c.op.Name == self || !c.running.Load() {
			continue
		}
		ch, ok := c.childKindOf(gk)
		if !ok {
			continue
		}
		if existing, ok := ch.getChild(key); ok {
			if parent, ok := c.owningParent(existing); ok {
				return c.op.Name, parent, true, nil
			}
			// Not in its parent cache: gone, or out of its selection,
			// which keeps its children (docs/contract.md, "Children"),
			// unless the answering parent is that one: it moved to the
			// answering operator (relabelled), its children with it.
			if controlledBy(existing, answering) {
				return c.op.Name, nil, true, nil
			}
			parent, err := c.uncachedOwner(ctx, existing)
			return c.op.Name, parent, true, err
		}
	}
	return "", nil, false, nil
}
