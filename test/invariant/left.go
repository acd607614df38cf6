package invariant

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// checkLeft judges an object the gateway let go of (docs/architecture.md,
// "Released means forgotten"): it owes the object nothing, not even a
// change still pending when it left, but must not call anything for a
// change made after it left (a stray: create, update, sync, ... with a
// later essence, or delete for a later deletion), nor keep its finalizer
// or state annotation on it.
func checkLeft(o *ObjectReport, exp Expect, changes []Change, calls []Call, live *unstructured.Unstructured) {
	at := slices.IndexFunc(changes, func(c Change) bool { return c.Kind == Left })
	before := map[string]bool{}
	for _, c := range changes[:at] {
		before[c.Essence] = true
	}
	after := map[string]bool{}
	deletedAfter := false
	for _, c := range changes[at:] {
		switch {
		case c.Kind == Deleted:
			deletedAfter = !slices.ContainsFunc(changes[:at], func(c Change) bool { return c.Kind == Deleted })
		case c.Essence != "" && !before[c.Essence]:
			after[c.Essence] = true
		}
	}
	for _, c := range calls {
		if c.Outcome == Abandoned || c.Outcome == Unreadable {
			continue
		}
		if c.Event == callbacks.EventDelete && deletedAfter || c.Event != callbacks.EventDelete && after[c.Essence] {
			o.Strays++
			o.problem("%s %q called (call %d) for a change made after the gateway let go of the object", c.Event, c.Callback, c.Seq)
		}
	}
	if live == nil {
		return
	}
	stub := &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: exp.Operator}}
	if slices.Contains(live.GetFinalizers(), stub.Finalizer()) {
		o.Stuck = true
		o.problem("left the operator but still holds finalizer %s", stub.Finalizer())
	}
	if _, ok := live.GetAnnotations()[stub.StateAnnotation()]; ok {
		o.Stuck = true
		o.problem("left the operator but still carries annotation %s", stub.StateAnnotation())
	}
}
