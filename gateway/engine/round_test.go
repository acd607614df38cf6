package engine

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// Once a round ends or is dropped, a retry record of a call no longer owed
// goes, as a success would end it: an update's whose change was taken back
// would count the object failing for good. What is still owed keeps its
// backoff and count: an update round still to come (after a resume round),
// a callback owed the essence now, a requeue, a sync; and a permanent
// failure at the essence now keeps the object failing until it changes.
func TestAnEndedRoundLeavesOnlyTheRecordsOfCallsStillOwed(t *testing.T) {
	const handled, now = "h1", "h1"
	for _, tt := range []struct {
		name     string
		event    spec.Event
		failedAt string // permanently, at this essence
		handled  string // the handled essence (the essence now is h1)
		behind   bool
		requeue  bool
		wantKept bool
	}{
		{"an update whose change was taken back", spec.EventUpdate, "", handled, false, false, false},
		{"an update failed permanently at a change taken back", spec.EventUpdate, "d2", handled, false, false, false},
		{"an update failed permanently at the essence now", spec.EventUpdate, now, handled, false, false, true},
		{"an update whose round is still to come", spec.EventUpdate, "", "h0", false, false, true},
		{"an update owed the essence now", spec.EventUpdate, "", handled, true, false, true},
		{"a requeued update", spec.EventUpdate, "", handled, false, true, true},
		{"a resume whose round ended", spec.EventResume, "", handled, false, false, false},
		{"a sync's, which comes again by itself", spec.EventSync, "", handled, false, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pr := &state.Progress{Event: string(tt.event), Attempts: 2, Digest: "d2"}
			if tt.failedAt != "" {
				pr.Failed, pr.Digest = true, tt.failedAt
			}
			st := &state.State{Handled: tt.handled, Progress: map[string]*state.Progress{"main": pr}}
			if tt.behind {
				st.Behind = []*state.Seen{{IDs: []string{"main"}, Digest: "d2"}}
			}
			p := &pass{st: st, mem: &objectMemory{}, plan: decide.Plan{EssenceDigest: now}}
			if tt.requeue {
				p.mem.Requeue = map[decide.RequeueKey]time.Time{{Callback: "main", Event: tt.event}: {}}
			}
			endUnowedRecords(everyEvent("main"), p)
			if kept := st.Progress["main"] != nil; kept != tt.wantKept {
				t.Errorf("record kept = %v, want %v", kept, tt.wantKept)
			}
		})
	}
}

// A create round is not dropped by a change: a callback done at an older
// essence than the round ends at never saw the change since, so the round
// records the first essence a callback of it acted on as handled, and the
// next update round delivers the change from there (no one, without an
// update callback: the round ends at the essence now).
func TestACreateRoundEndsAtTheOldestEssenceACallbackActedOn(t *testing.T) {
	e1, e2 := map[string]any{"spec": map[string]any{"size": int64(1)}}, map[string]any{"spec": map[string]any{"size": int64(2)}}
	type step struct {
		at   map[string]any
		done []string
		undo bool // a refused held status undoes the pass's done callbacks
	}
	for _, tt := range []struct {
		name  string
		round state.Round // as the first pass finds it
		steps []step
		want  map[string]any
		// createOnly: the operator has no update callback.
		createOnly bool
	}{
		{"all done in one pass", state.Round{}, []step{{at: e1, done: []string{"a", "b"}}}, e1, false},
		{"a changed while b retried", state.Round{}, []step{{at: e1, done: []string{"a"}}, {at: e2, done: []string{"b"}}}, e1, false},
		{"the change taken back", state.Round{}, []step{{at: e1, done: []string{"a"}}, {at: e2}, {at: e1, done: []string{"b"}}}, e1, false},
		{"a's status refused", state.Round{}, []step{{at: e1, done: []string{"a"}, undo: true}, {at: e2, done: []string{"a", "b"}}}, e2, false},
		{"a round a gateway kept no digest of", state.Round{Done: []string{"a"}}, []step{{at: e2, done: []string{"b"}}}, e2, false},
		{"no update callback", state.Round{}, []step{{at: e1, done: []string{"a"}}, {at: e2, done: []string{"b"}}}, e2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			op := everyEvent("a")
			if tt.createOnly {
				op.Spec.Callbacks[0].Events = []spec.Event{spec.EventCreate}
			}
			c := &Controller{op: op, Deps: Deps{EssenceCap: state.DefaultEssenceCap}}
			round := tt.round
			round.Event = string(spec.EventCreate)
			st := &state.State{Round: &round}
			for i, s := range tt.steps {
				p := &pass{st: st, mem: &objectMemory{}, plan: decide.Plan{
					Essence: s.at, EssenceDigest: essence.Digest(s.at), RoundCallbacks: []string{"a", "b"}}}
				st.Round.Done = append(st.Round.Done, s.done...)
				done, err := c.finishRound(p, false)
				if err == nil && s.undo {
					st.Round.Done = slices.DeleteFunc(st.Round.Done, func(id string) bool { return slices.Contains(s.done, id) })
					done, err = c.finishRound(p, false)
				}
				if err != nil {
					t.Fatal(err)
				}
				if last := i == len(tt.steps)-1; done != last {
					t.Fatalf("step %d: round ended = %v, want %v", i, done, last)
				}
			}
			if st.Handled != essence.Digest(tt.want) {
				t.Errorf("handled %s, want %v's %s", st.Handled, tt.want, essence.Digest(tt.want))
			}
			if got, err := st.HandledEssence(); err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("handled essence %v (%v), want %v", got, err, tt.want)
			}
		})
	}
}
