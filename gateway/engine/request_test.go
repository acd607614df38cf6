package engine

import (
	"testing"
	"time"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// A callback that failed permanently gets one more attempt on a reconcile
// request while the state still waits for it: one of the open round's, a
// sync, a timer (at once: its next tick is an interval away otherwise), a
// delete callback while deleting.
func TestOwedSaysWhichPermanentlyFailedCallbacksARequestCallsAgain(t *testing.T) {
	cb := func(events ...spec.Event) spec.Callback { return spec.Callback{ID: "main", Events: events} }
	round := func(event string, done ...string) *state.Round { return &state.Round{Event: event, Done: done} }
	for _, tt := range []struct {
		name     string
		cb       spec.Callback
		round    *state.Round
		deleting bool
		want     bool
	}{
		{"a create of the open round", cb(spec.EventCreate), round("create"), false, true},
		{"an update whose round is over", cb(spec.EventUpdate), nil, false, false},
		{"an update done in the open round", cb(spec.EventUpdate), round("update", "main"), false, false},
		{"a sync", cb(spec.EventSync), nil, false, true},
		{"a timer", cb(spec.EventTimer), nil, false, true},
		{"a timer while deleting", cb(spec.EventTimer), nil, true, false},
		{"a delete while deleting", cb(spec.EventDelete), round("delete"), true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &pass{st: &state.State{Round: tt.round}, mem: &objectMemory{}}
			op := &spec.WebhookOperator{Spec: spec.OperatorSpec{Callbacks: []spec.Callback{tt.cb}}}
			if got := owed(op, tt.cb, string(tt.cb.Events[0]), p, tt.deleting); got != tt.want {
				t.Errorf("owed = %v, want %v", got, tt.want)
			}
		})
	}
}

// A sync's success ends the same callback's retry record of another event
// only once nothing owes that event's call any more: an update retried in
// its open round, or a requeued one, goes on with its backoff and attempts;
// one whose round ended without it (the spec reverted to what was handled)
// or whose requeue a restart forgot no longer counts the object failing.
func TestASuccessEndsAnotherEventsRecordOnceItsCallIsNoLongerOwed(t *testing.T) {
	for _, tt := range []struct {
		name     string
		event    spec.Event
		round    *state.Round
		requeue  spec.Event
		wantKept bool
	}{
		{"the sync's own", spec.EventSync, nil, "", false},
		{"written before events were kept", "", &state.Round{Event: "update"}, "", false},
		{"an update retried in its open round", spec.EventUpdate, &state.Round{Event: "update"}, "", true},
		{"an update done in its round", spec.EventUpdate, &state.Round{Event: "update", Done: []string{"main"}}, "", false},
		{"an update whose round ended", spec.EventUpdate, nil, "", false},
		{"a requeued update", spec.EventUpdate, nil, spec.EventUpdate, true},
		{"a create retried in its open round", spec.EventCreate, &state.Round{Event: "create"}, "", true},
		{"a resume whose round ended", spec.EventResume, nil, "", false},
		{"a timer's, which comes again by itself", spec.EventTimer, nil, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := &state.State{Round: tt.round, Progress: map[string]*state.Progress{"main": {Event: string(tt.event), Attempts: 2}}}
			p := &pass{st: st, mem: &objectMemory{}}
			if tt.requeue != "" {
				p.mem.Requeue = map[decide.RequeueKey]time.Time{{Callback: "main", Event: tt.requeue}: {}}
			}
			endRecord(everyEvent("main"), p, "main", string(spec.EventSync))
			if kept := st.Progress["main"] != nil; kept != tt.wantKept {
				t.Errorf("record kept = %v, want %v", kept, tt.wantKept)
			}
		})
	}
}

// everyEvent is an operator whose callback id handles every event.
func everyEvent(id string) *spec.WebhookOperator {
	return &spec.WebhookOperator{Spec: spec.OperatorSpec{Callbacks: []spec.Callback{{ID: id, Events: []spec.Event{
		spec.EventCreate, spec.EventUpdate, spec.EventDelete, spec.EventResume, spec.EventTimer, spec.EventSync}}}}}
}
