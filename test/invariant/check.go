package invariant

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
)

// OwnerUIDLabel names the parent of a child the garbage collector cannot
// tie to it (docs/contract.md, "Children").
const OwnerUIDLabel = "opgate.dev/owner-uid"

// Snapshot is what the cluster holds at the end of a scenario: every parent
// in the scenario's scope and every child of the operator.
type Snapshot struct {
	Parents  []*unstructured.Unstructured
	Children []*unstructured.Unstructured
	// NoGarbageCollector is set where no kube-controller-manager runs
	// (envtest): children owned through an ownerReference then outlive
	// their parent by design and are not counted as orphans.
	NoGarbageCollector bool
}

// Check counts, per object of the history, what the gateway lost, repeated,
// orphaned, left missing or stuck, and whether the status converged. It
// judges a single moment: call it after the scenario's faults end, and
// again until it is clean or time is up (Checker.AssertEventually).
func Check(exp Expect, changes []Change, calls []Call, snap Snapshot) Report {
	byUID := map[types.UID][]Change{}
	var order []types.UID
	for _, c := range changes {
		if _, seen := byUID[c.UID]; !seen {
			order = append(order, c.UID)
		}
		byUID[c.UID] = append(byUID[c.UID], c)
	}
	callsByUID := map[types.UID][]Call{}
	for _, c := range calls {
		callsByUID[c.ObjectUID] = append(callsByUID[c.ObjectUID], c)
	}
	parents := map[types.UID]*unstructured.Unstructured{}
	for _, p := range snap.Parents {
		parents[p.GetUID()] = p
	}
	owned := map[types.UID][]*unstructured.Unstructured{}
	for _, ch := range snap.Children {
		owned[ownerOf(ch)] = append(owned[ownerOf(ch)], ch)
	}

	var rep Report
	for _, uid := range order {
		o := checkObject(exp, byUID[uid], callsByUID[uid], parents[uid], owned[uid], snap.NoGarbageCollector)
		rep.add(o)
	}
	rep.orphansWithoutHistory(byUID, parents, owned, snap.NoGarbageCollector)
	return rep
}

func checkObject(exp Expect, changes []Change, calls []Call, live *unstructured.Unstructured, children []*unstructured.Unstructured, noGC bool) ObjectReport {
	first := changes[0]
	o := ObjectReport{UID: first.UID, Namespace: first.Namespace, Name: first.Name}
	deleted := slices.ContainsFunc(changes, func(c Change) bool { return c.Kind == Deleted })
	o.Duplicates = duplicates(calls)
	if slices.ContainsFunc(changes, func(c Change) bool { return c.Kind == Left }) {
		checkLeft(&o, exp, changes, calls, live)
		if live != nil && deleted {
			o.Stuck = true
			o.problem("deleted by the test but still present, finalizers %v", live.GetFinalizers())
		}
		if deleted {
			checkChildren(&o, calls, live, deleted, children, noGC)
		}
		return o
	}
	if deleted {
		checkDeleted(&o, exp, calls, live)
	} else {
		checkLive(&o, exp, changes, calls)
	}
	switch {
	case live != nil && deleted:
		o.Stuck = true
		o.problem("deleted by the test but still present, finalizers %v", live.GetFinalizers())
	case live == nil && !deleted:
		o.Unconverged = true
		o.problem("absent from the cluster, though the test never deleted it")
	case live != nil && live.GetDeletionTimestamp() == nil:
		checkStatus(&o, calls, live)
	}
	checkChildren(&o, calls, live, deleted, children, noGC)
	return o
}

// checkDeleted: a deleted object needs each delete callback to have
// succeeded once; its earlier changes are folded into the deletion, as the
// gateway may never see them. An object no callback ever saw may have
// been deleted before the gateway knew of it: that is Unseen, not lost.
func checkDeleted(o *ObjectReport, exp Expect, calls []Call, live *unstructured.Unstructured) {
	handled := slices.ContainsFunc(calls, func(c Call) bool { return c.Outcome == Succeeded || c.Outcome == Requeued })
	for _, id := range exp.Delete {
		o.Changes++
		if slices.ContainsFunc(calls, func(c Call) bool {
			return c.Event == callbacks.EventDelete && c.Callback == id && c.Outcome == Succeeded
		}) {
			o.Delivered++
			continue
		}
		if !handled && live == nil {
			o.Unseen = true
			continue
		}
		o.Lost++
		o.problem("deletion never reached delete callback %q", id)
	}
}

// checkLive: each create callback must have succeeded once, and each update
// must have reached each update callback, or been overtaken by a later
// change that did (the gateway delivers the newest essence, not every step).
func checkLive(o *ObjectReport, exp Expect, changes []Change, calls []Call) {
	for _, id := range exp.Create {
		o.Changes++
		if slices.ContainsFunc(calls, func(c Call) bool { return c.Event == callbacks.EventCreate && c.Callback == id && delivered(c) }) {
			o.Delivered++
		} else {
			o.Lost++
			o.problem("creation never reached create callback %q", id)
		}
	}
	for i, ch := range changes {
		if ch.Kind != Updated {
			continue
		}
		later := map[string]bool{}
		for _, c := range changes[i:] {
			later[c.Essence] = true
		}
		for _, id := range exp.Update {
			o.Changes++
			if slices.ContainsFunc(calls, func(c Call) bool {
				return delivered(c) && later[c.Essence] &&
					(c.Event == callbacks.EventCreate || c.Event == callbacks.EventUpdate && c.Callback == id)
			}) {
				o.Delivered++
				continue
			}
			o.Lost++
			o.problem("update at %s (rv %s) never reached update callback %q", ch.At.Format("15:04:05.000"), ch.ResourceVersion, id)
		}
	}
}

func delivered(c Call) bool { return c.Outcome == Succeeded || c.Outcome == Requeued }

// duplicates counts successful calls of a change already delivered: the
// same event, callback and essence answered successfully before (for
// delete, the same callback). At-least-once allows them; they are counted
// so that a scenario can bound them.
func duplicates(calls []Call) int {
	seen := map[string]bool{}
	n := 0
	for _, c := range calls {
		if c.Outcome != Succeeded {
			continue
		}
		var key string
		switch c.Event {
		case callbacks.EventCreate, callbacks.EventUpdate:
			key = string(c.Event) + "\x00" + c.Callback + "\x00" + c.Essence
		case callbacks.EventDelete:
			key = string(c.Event) + "\x00" + c.Callback
		default:
			continue
		}
		if seen[key] {
			n++
		}
		seen[key] = true
	}
	return n
}

// ownerOf is the uid of a child's parent: its owner-uid label, else its
// controller ownerReference.
func ownerOf(child *unstructured.Unstructured) types.UID {
	if uid := child.GetLabels()[OwnerUIDLabel]; uid != "" {
		return types.UID(uid)
	}
	for _, ref := range child.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			return ref.UID
		}
	}
	return ""
}

// collectedByGC reports whether the garbage collector, rather than the
// gateway, deletes this child with its parent.
func collectedByGC(child *unstructured.Unstructured) bool {
	return child.GetLabels()[OwnerUIDLabel] == ""
}

func refOfChild(u *unstructured.Unstructured) ChildRef { return refOf(u) }

// sameChild compares a desired child with a present one by group, kind,
// namespace (the parent's when the answer gave none; any for a
// cluster-scoped child) and name.
func sameChild(want ChildRef, parentNS string, got ChildRef) bool {
	wg, _ := schema.ParseGroupVersion(want.APIVersion)
	gg, _ := schema.ParseGroupVersion(got.APIVersion)
	ns := want.Namespace
	if ns == "" {
		ns = parentNS
	}
	return wg.Group == gg.Group && want.Kind == got.Kind && want.Name == got.Name &&
		(got.Namespace == "" || got.Namespace == ns)
}

func (o *ObjectReport) problem(format string, args ...any) {
	o.Problems = append(o.Problems, fmt.Sprintf(format, args...))
}
