package engine

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// A callback whose held status the API server refuses is called again, as
// a failure of the same delivery. Only what that call did is undone: a
// round call refused leaves the round with the callback not done, but a
// refused sync or requeued call of a callback done in the open round
// leaves it done, or its round call is made again for the same change.
func TestARefusedHeldStatusUndoesOnlyTheDoneItsCallAdded(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	cb := spec.Callback{ID: "deploy", Events: []spec.Event{spec.EventCreate, spec.EventUpdate, spec.EventSync}}
	for _, tt := range []struct {
		name     string
		round    spec.Event // the open round's event
		doneAt   bool       // deploy done in it before the call
		call     spec.Event
		wantDone bool
	}{
		{name: "the update round's call", round: spec.EventUpdate, call: spec.EventUpdate, wantDone: false},
		{name: "the create round's call", round: spec.EventCreate, call: spec.EventCreate, wantDone: false},
		{name: "a sync call, its update done in the round", round: spec.EventUpdate, doneAt: true, call: spec.EventSync, wantDone: true},
		{name: "a requeued update call, done in the round", round: spec.EventUpdate, doneAt: true, call: spec.EventUpdate, wantDone: true},
		{name: "a requeued create call, done in the round", round: spec.EventCreate, doneAt: true, call: spec.EventCreate, wantDone: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := retryController(t, now, cb, nil)
			c.op.Spec.Status = &spec.StatusSpec{Conditions: true}
			r := &state.Round{Event: string(tt.round), Digest: "h1"}
			if tt.doneAt {
				r.Done = []string{"deploy"}
			}
			st := &state.State{Handled: "h0", Round: r}
			p := widgetPass(now, st, "h1")
			w := decide.Work{Callback: cb, Event: tt.call}
			// As invoke does: a success whose answer deferred a status.
			held := c.holdStatus(p, w, delivery{attempt: 1, first: now})
			p.status.n++
			if !held(nil, c.recordSuccess(p, w, nil)) {
				t.Fatal("the status was not held")
			}
			c.failHeld(p, errors.New("widgets/status is forbidden"))
			if got := slices.Contains(st.Round.Done, "deploy"); got != tt.wantDone {
				t.Errorf("deploy done in the round: %v, want %v (done %v)", got, tt.wantDone, st.Round.Done)
			}
		})
	}
}
