package inspect

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// A create round ended with a callback still owed the essence now
// (b, no round open) reads pending (8a6c555), but `gateway status OBJ`
// shows no round, nothing waiting, nothing owed: nothing says why.
func TestDescribeOfAnObjectOwedAnUpdateWithNoRoundOpenSaysWhatItWaitsFor(t *testing.T) {
	op := testOperator()
	op.Spec.Callbacks = []spec.Callback{
		{ID: "create", Events: []spec.Event{spec.EventCreate}},
		{ID: "resize", Events: []spec.Event{spec.EventUpdate, spec.EventCreate}},
	}
	sized := func(size int64) func(*unstructured.Unstructured) {
		return func(o *unstructured.Unstructured) { _ = unstructured.SetNestedField(o.Object, size, "spec", "size") }
	}
	digestAt := func(size int64) string { return essence.Digest(essence.Of(object("a", nil, false, sized(size)))) }
	st := &state.State{Behind: []*state.Seen{{IDs: []string{"resize"}, Digest: digestAt(5)}}}
	obj := object("a", st, true, nil) // handled at size 3, the essence now
	d := Describe(op, obj, nil, time.Now())
	if d.State != Pending {
		t.Fatalf("state %s, want pending", d.State)
	}
	if d.Round == nil || len(d.Round.Waiting) != 1 || len(d.Round.Owed) != 1 {
		t.Errorf("pending, essence handled, yet round %+v: gateway status shows nothing waiting or owed (the next pass calls resize, owed size 5 → 3)", d.Round)
	}
}

// A deleting object the operator holds no finalizer of (another
// controller's keeps it) gets no more passes (decide plans nothing), so a
// b left on it is never emptied: it reads pending for as long as the
// other finalizer holds it, though nothing will ever be called.
func TestADeletingObjectTheOperatorDoesNotHoldIsNotPendingForEver(t *testing.T) {
	op := testOperator()
	op.Spec.Callbacks = []spec.Callback{
		{ID: "create", Events: []spec.Event{spec.EventCreate}},
		{ID: "resize", Events: []spec.Event{spec.EventUpdate, spec.EventCreate}},
	}
	st := &state.State{Behind: []*state.Seen{{IDs: []string{"resize"}, Digest: "older"}}}
	obj := object("a", st, true, func(o *unstructured.Unstructured) {
		now := metav1.Now()
		o.SetDeletionTimestamp(&now)
		o.SetFinalizers([]string{"example.com/other"})
	})
	if got := ClassifyObject(op, obj, time.Now()).State; got != Settled {
		t.Errorf("state %s, want settled: no pass ever runs the update round that would empty b", got)
	}
}
