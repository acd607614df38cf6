package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/state"
)

// An object can vanish while it holds the operator's finalizer: the API
// server deletes an object at once when its delete request read it without
// finalizers, and a finalizer added between that read and the write of the
// delete does not stop it (the store retries its write without looking at
// finalizers again). The gateway may have called create on it meanwhile, so
// its delete callbacks are still owed: they are called on the object's last
// state, with the usual retries, from this process's memory.

// vanishedObject is an object deleted while it held the finalizer, whose
// delete callbacks are still to run.
type vanishedObject struct {
	obj       *unstructured.Unstructured // last state, deletionTimestamp set
	st        *state.State
	mem       *objectMemory
	confirmed bool // a live read found it gone
}

// onParentDeleted is the parent informer's delete handler. The final state
// of an object let go as usual has a deletionTimestamp (the watch reports
// the state before the last finalizer went); one still selected, holding
// the finalizer and never marked deleted was deleted past the finalizer.
func (c *Controller) onParentDeleted(obj any) {
	if u, ok := asUnstructured(obj); ok && u.GetDeletionTimestamp() == nil && c.holdsFinalizer(u) &&
		selects(c.op, c.parent.mapping.GroupVersionKind.GroupKind(), u) && u.GetAnnotations()[decide.ReleaseAnnotation] != "true" {
		c.noteVanished(u)
	}
	c.noteGone(obj)
	c.enqueueObject(obj)
}

// noteGone remembers whether the watch's last word on a key leaves nothing
// to let go of: the object was deleting and this process released its
// finalizer. Its pass then skips the live read releaseIfUnwatched makes
// for an object that left the selection still holding what the gateway put
// on it (one read per deleted object otherwise). The event's content alone
// cannot tell: a deletion that the finalizer's removal completes reports
// the state before the removal, and an object leaving the selection is
// reported with content that a pass still running may since have written
// the finalizer or state annotation onto. Anything else (a tombstone, an
// object the gateway did not release) clears the mark: its key is read.
func (c *Controller) noteGone(obj any) {
	u, final := obj.(*unstructured.Unstructured)
	if !final {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.mu.Lock()
			delete(c.gone, key)
			c.mu.Unlock()
		}
		return
	}
	key := keyOf(u)
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.memory[key]
	if u.GetDeletionTimestamp() == nil || m == nil || m.uid != u.GetUID() || !m.released {
		delete(c.gone, key)
		return
	}
	if c.gone == nil {
		c.gone = map[string]bool{}
	}
	c.gone[key] = true
}

// takeGone says whether noteGone found nothing to let go of under key, and
// forgets it.
func (c *Controller) takeGone(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	gone := c.gone[key]
	delete(c.gone, key)
	return gone
}

func (c *Controller) noteVanished(u *unstructured.Unstructured) {
	v := &vanishedObject{obj: u.DeepCopy(), mem: &objectMemory{uid: u.GetUID()}}
	now := metav1.NewTime(c.Clock())
	v.obj.SetDeletionTimestamp(&now) // delete callbacks see a deleted object
	uid := string(u.GetUID())
	st, _, err := state.DecodeFor(u.GetAnnotations()[c.stateAnnotation()], uid)
	if err != nil {
		st = &state.State{UID: uid}
	}
	v.st = st
	key := keyOf(u)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vanished == nil {
		c.vanished = map[string]map[types.UID]*vanishedObject{}
	}
	if c.vanished[key] == nil {
		c.vanished[key] = map[types.UID]*vanishedObject{}
	}
	if _, ok := c.vanished[key][u.GetUID()]; !ok {
		c.vanished[key][u.GetUID()] = v
	}
}

// reconcileKey is one pass of key: the delete callbacks owed to the objects
// that vanished under it, then the object it names now.
func (c *Controller) reconcileKey(ctx context.Context, key string) (time.Duration, error) {
	vwake, verr := c.deliverVanished(ctx, key)
	wake, err := c.reconcile(ctx, key)
	if vwake > 0 && (wake == 0 || vwake < wake) {
		wake = vwake
	}
	return wake, errors.Join(err, verr)
}

func (c *Controller) deliverVanished(ctx context.Context, key string) (time.Duration, error) {
	c.mu.Lock()
	var list []*vanishedObject
	for _, v := range c.vanished[key] {
		list = append(list, v)
	}
	c.mu.Unlock()
	var wake time.Duration
	var errs []error
	for _, v := range list {
		d, done, err := c.deliverOne(ctx, key, v)
		if done {
			c.mu.Lock()
			delete(c.vanished[key], v.obj.GetUID())
			if len(c.vanished[key]) == 0 {
				delete(c.vanished, key)
			}
			c.mu.Unlock()
		}
		if err != nil {
			errs = append(errs, err)
		}
		if d > 0 && (wake == 0 || d < wake) {
			wake = d
		}
	}
	return wake, errors.Join(errs...)
}

// deliverOne runs the due delete callbacks of one vanished object; done
// says it needs nothing more.
func (c *Controller) deliverOne(ctx context.Context, key string, v *vanishedObject) (wake time.Duration, done bool, err error) {
	if !v.confirmed {
		live, err := c.Dynamic.Resource(c.parent.mapping.Resource).Namespace(v.obj.GetNamespace()).Get(ctx, v.obj.GetName(), metav1.GetOptions{})
		switch {
		case err == nil && live.GetUID() == v.obj.GetUID():
			return 0, true, nil // still there: the informer lost sight of it, the usual passes handle it
		case err != nil && !apierrors.IsNotFound(err):
			return 0, false, fmt.Errorf("read vanished %s: %w", key, err)
		}
		v.confirmed = true
		c.log.Warn("object deleted while its finalizer was being added; calling its delete callbacks on its last state", "object", key)
		c.event(v.obj, "Warning", "DeletedHoldingFinalizer",
			fmt.Sprintf("deleted while the finalizer %s was being added; the delete callbacks are called on its last state", c.finalizer()))
	}
	p := &pass{key: key, obj: v.obj, st: v.st, mem: v.mem, now: c.Clock(), gone: true}
	if c.needsObserved() {
		p.children = c.ownedChildren(p.obj)
		p.related, p.relatedErr = c.relatedObjects(p.obj)
	}
	p.plan = decide.Decide(decide.Input{
		Operator: c.op, Object: p.obj, State: p.st, Memory: &v.mem.Memory,
		HoldsFinalizer: true, ChildrenByLabel: c.childrenByLabel(), Now: p.now,
	})
	takeRound(c.op, p)
	budget := &passBudget{left: c.ReconcileTimeout}
	for _, w := range p.plan.Work {
		if ctx.Err() != nil || budget.exhausted() {
			break
		}
		c.runWork(ctx, p, budget, w)
	}
	if p.plan.ReleaseFinalizer || p.st.Round != nil && allDone(p.st.Round, p.plan.RoundCallbacks) {
		if err := c.settleChildrenByLabel(ctx, p); err != nil {
			return 0, false, err
		}
		return 0, true, nil
	}
	// Nothing ever due again: a delete callback failed permanently, which
	// its Warning reported; nothing of the object can change any more.
	wake = c.nextWake(p)
	return wake, wake == 0, nil
}
