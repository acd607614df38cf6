// Package invariant checks what a fault scenario must never break: every
// change the test made reached the handler (at-least-once, so repeats are
// counted but allowed), no child is orphaned or missing, no deleted object
// is stuck on a finalizer, and every object's status holds what the
// handler last answered (docs/reliability.md, "Delivery guarantee").
//
// A scenario records its changes in a History, wraps its handler in a
// Recorder, and ends with Checker.AssertEventually, which polls the cluster
// until every count is zero and otherwise fails with a table per object.
//
//	chk := invariant.New(op, dynamicClient, invariant.Scope{Parent: widgets, Namespace: ns, Children: []schema.GroupVersionResource{configMaps}})
//	srv := httptest.NewServer(chk.Recorder.Wrap(handler))
//	created, err := client.Create(ctx, obj, metav1.CreateOptions{})
//	chk.Record(t, invariant.Created, created) // Updated, Deleted likewise
//	// ... faults ...
//	report, took := chk.AssertEventually(t, 2*time.Minute)
package invariant

import (
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks/essence"
)

// ChangeKind is what the test did to an object.
type ChangeKind string

// The changes a History records.
const (
	Created ChangeKind = "created"
	Updated ChangeKind = "updated"
	Deleted ChangeKind = "deleted"
	// Left: the object left the operator (its labels or the operator's
	// selector changed, or the operator was deleted) and the test saw the
	// gateway let go of it. Record it once the finalizer and state
	// annotation are gone, and order it with the object's other changes
	// (one writer per object): the checker then owes the object nothing
	// (a change pending when it left is forgotten with it), and any call
	// carrying a change made after it is a stray.
	Left ChangeKind = "left"
)

// Change is one write of the test, as the API server answered it.
type Change struct {
	UID             types.UID
	Namespace, Name string
	Kind            ChangeKind
	ResourceVersion string
	Generation      int64
	// Essence is the digest of the object's essence after the change
	// (essence.Of, the part create and update react to); empty for Deleted
	// and Left.
	Essence string
	At      time.Time
}

// History is the changes a test made, in order. It is safe for concurrent
// use. Each update should give its object an essence it never had before
// (a counter in the spec does it): a change back to an earlier essence is
// no change to the gateway (docs/contract.md), and the checker could not
// tell which of the two a call delivered.
type History struct {
	mu      sync.Mutex
	changes []Change
}

// NewHistory returns an empty history.
func NewHistory() *History { return &History{} }

// Record notes a change of obj, the object the API server returned for the
// write (for Deleted: any copy of the object carrying its uid). It returns
// an error for an object without uid, which would be a mistake in the test.
func (h *History) Record(kind ChangeKind, obj *unstructured.Unstructured) error {
	if obj == nil || obj.GetUID() == "" {
		return fmt.Errorf("invariant: record %s: the object has no uid (record the API server's answer, not the object sent)", kind)
	}
	c := Change{
		UID: obj.GetUID(), Namespace: obj.GetNamespace(), Name: obj.GetName(), Kind: kind,
		ResourceVersion: obj.GetResourceVersion(), Generation: obj.GetGeneration(), At: time.Now(),
	}
	if kind != Deleted && kind != Left {
		c.Essence = EssenceOf(obj)
	}
	h.mu.Lock()
	h.changes = append(h.changes, c)
	h.mu.Unlock()
	return nil
}

// Changes returns a copy of the recorded changes, oldest first.
func (h *History) Changes() []Change {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Change(nil), h.changes...)
}

// EssenceOf is the digest by which changes and calls are matched: the same
// essence the gateway compares to decide that an update is due.
func EssenceOf(obj *unstructured.Unstructured) string {
	return essence.Digest(essence.Of(obj))
}
