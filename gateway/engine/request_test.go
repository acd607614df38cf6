package engine

import (
	"testing"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// A callback that failed permanently gets one more attempt on a reconcile
// request while the state still waits for it: one of the open round's, a
// sync, a timer (which waits for the essence to change otherwise, since it
// failed permanently: a handler outage past maxAttempts would stop it for
// good), a delete callback while deleting.
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
			p := &pass{st: &state.State{Round: tt.round}}
			if got := owed(tt.cb, p, tt.deleting); got != tt.want {
				t.Errorf("owed = %v, want %v", got, tt.want)
			}
		})
	}
}
