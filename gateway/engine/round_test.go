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

// A create round's callbacks may act on different essences, the user
// changing the spec while a sibling retries. Each callback that handles
// update as well is owed, once the round ends, the change from the essence
// its own create call carried, and nothing when that is the essence the
// round ends at; the update callbacks that acted on nothing hear of the
// change from the first essence a remaining create callback acted on.
func TestACreateRoundOwesEachCallbackTheChangeFromTheEssenceItActedOn(t *testing.T) {
	e := func(size int64) map[string]any { return map[string]any{"spec": map[string]any{"size": size}} }
	d := func(size int64) string { return essence.Digest(e(size)) }
	type step struct {
		at       int64    // spec.size in this pass
		removed  []string // callbacks an operator edit removed before it
		requeued []string // done before, their requeued create call succeeded in it
		done     []string
	}
	for _, tt := range []struct {
		name  string
		round state.Round // as the first pass finds it
		steps []step
		// handled: the size recorded as handled; behind: per size, the
		// callbacks owed the essence now with that one as old.
		handled int64
		behind  map[int64][]string
	}{
		{name: "all done in one pass",
			steps:   []step{{at: 1, done: []string{"deploy", "dns", "audit"}}},
			handled: 1},
		{name: "a callback that acted on the new essence is owed nothing",
			steps:   []step{{at: 1, done: []string{"deploy"}}, {at: 2, done: []string{"dns", "audit"}}},
			handled: 1, behind: map[int64][]string{2: {"dns"}}},
		{name: "a change taken back is owed to the callback that acted on it",
			steps:   []step{{at: 1, done: []string{"deploy"}}, {at: 2, done: []string{"dns"}}, {at: 1, done: []string{"audit"}}},
			handled: 1, behind: map[int64][]string{2: {"dns"}}},
		{name: "the only early callback removed by an operator edit",
			steps:   []step{{at: 1, done: []string{"deploy"}}, {at: 2, removed: []string{"deploy"}, done: []string{"dns", "audit"}}},
			handled: 2},
		{name: "a requeued create call at a newer essence",
			steps:   []step{{at: 1, done: []string{"deploy"}}, {at: 2, requeued: []string{"deploy"}, done: []string{"dns"}}, {at: 3, done: []string{"audit"}}},
			handled: 2},
		{name: "a requeued create call at the essence it acted on keeps its place",
			steps:   []step{{at: 1, done: []string{"deploy"}}, {at: 2, done: []string{"dns"}}, {at: 1, requeued: []string{"deploy"}, done: []string{"audit"}}},
			handled: 1, behind: map[int64][]string{2: {"dns"}}},
		{name: "a requeued create call at the essence it acted on, the round left open",
			steps:   []step{{at: 1, done: []string{"deploy"}}, {at: 2, done: []string{"dns"}}, {at: 1, requeued: []string{"deploy"}}, {at: 1, done: []string{"audit"}}},
			handled: 1, behind: map[int64][]string{2: {"dns"}}},
		{name: "a requeued create call in the pass the round ends",
			steps:   []step{{at: 1, done: []string{"deploy"}}, {at: 2, requeued: []string{"deploy"}, done: []string{"dns", "audit"}}},
			handled: 2},
		{name: "a round an older gateway left open, done callbacks not grouped",
			round:   state.Round{Done: []string{"deploy"}},
			steps:   []step{{at: 2, done: []string{"dns", "audit"}}},
			handled: 2},
		{name: "a round a gateway left open keeping the first essence in the round",
			round:   state.Round{Done: []string{"deploy"}, Digest: d(1), Essence: []byte(`{"spec":{"size":1}}`)},
			steps:   []step{{at: 2, done: []string{"dns", "audit"}}},
			handled: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			op := &spec.WebhookOperator{Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
				{ID: "deploy", Events: []spec.Event{spec.EventCreate, spec.EventUpdate}},
				{ID: "dns", Events: []spec.Event{spec.EventCreate, spec.EventUpdate}},
				{ID: "audit", Events: []spec.Event{spec.EventCreate}},
				{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
			}}}
			c := &Controller{op: op, Deps: Deps{EssenceCap: state.DefaultEssenceCap}}
			round := tt.round
			round.Event = string(spec.EventCreate)
			st := &state.State{Round: &round}
			for i, s := range tt.steps {
				op.Spec.Callbacks = slices.DeleteFunc(op.Spec.Callbacks, func(cb spec.Callback) bool { return slices.Contains(s.removed, cb.ID) })
				forgetRemovedCallbacks(st, op)
				p := &pass{st: st, mem: &objectMemory{}, plan: decide.Plan{
					Essence: e(s.at), EssenceDigest: d(s.at), RoundCallbacks: []string{"deploy", "dns", "audit"}}}
				p.plan.RoundCallbacks = slices.DeleteFunc(p.plan.RoundCallbacks, func(id string) bool { return slices.Contains(s.removed, id) })
				for _, id := range s.requeued {
					c.recordSuccess(p, decide.Work{Callback: spec.Callback{ID: id}, Event: spec.EventCreate}, nil)
				}
				st.Round.Done = append(st.Round.Done, s.done...)
				done, err := c.finishRound(p, false)
				if err != nil {
					t.Fatal(err)
				}
				if last := i == len(tt.steps)-1; done != last {
					t.Fatalf("step %d: round ended = %v, want %v", i, done, last)
				}
			}
			if st.Handled != d(tt.handled) {
				t.Errorf("handled %s, want size %d's %s", st.Handled, tt.handled, d(tt.handled))
			}
			if got, err := st.HandledEssence(); err != nil || !reflect.DeepEqual(got, e(tt.handled)) {
				t.Errorf("handled essence %v (%v), want %v", got, err, e(tt.handled))
			}
			got := map[int64][]string{}
			for _, g := range st.Behind {
				old, err := g.Old()
				size, _ := old["spec"].(map[string]any)["size"].(int64)
				if err != nil || g.Digest != d(size) {
					t.Fatalf("behind %+v: essence %v (%v) is not its digest's", g, old, err)
				}
				got[size] = append(got[size], g.IDs...)
			}
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tt.behind) {
				t.Errorf("owed (behind) %v, want %v", got, tt.behind)
			}
		})
	}
}

// An update callback may be added (an operator edit, or a restart with the
// operator's next version) while a create round is open: the change since
// the essence a create callback acted on is then owed to it. deploy
// (create only) creates at size 1 while audit keeps the round open, the
// user changes the size to 2, resize (update) is added, audit succeeds at
// 2: the round ends recording 1 as handled, so resize hears of 1 → 2.
func TestAnUpdateCallbackAddedDuringACreateRoundHearsOfTheChange(t *testing.T) {
	e := func(size int64) map[string]any { return map[string]any{"spec": map[string]any{"size": size}} }
	d := func(size int64) string { return essence.Digest(e(size)) }
	op := &spec.WebhookOperator{Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
		{ID: "deploy", Events: []spec.Event{spec.EventCreate}},
		{ID: "audit", Events: []spec.Event{spec.EventCreate}},
	}}}
	c := &Controller{op: op, Deps: Deps{EssenceCap: state.DefaultEssenceCap}}
	st := &state.State{Round: &state.Round{Event: string(spec.EventCreate)}}
	pass := func(size int64, done ...string) bool {
		forgetRemovedCallbacks(st, op)
		p := &pass{st: st, mem: &objectMemory{}, plan: decide.Plan{Essence: e(size), EssenceDigest: d(size), RoundCallbacks: []string{"deploy", "audit"}}}
		st.Round.Done = append(st.Round.Done, done...)
		ended, err := c.finishRound(p, false)
		if err != nil {
			t.Fatal(err)
		}
		return ended
	}
	if pass(1, "deploy") {
		t.Fatal("round ended with audit not done")
	}
	op.Spec.Callbacks = append(op.Spec.Callbacks, spec.Callback{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}})
	if !pass(2, "audit") {
		t.Fatal("round did not end")
	}
	if st.Handled != d(1) {
		t.Errorf("handled %s, want size 1's %s: resize never hears of 1 → 2, which deploy's create did not see", st.Handled, d(1))
	}
	if st.Behind != nil {
		t.Errorf("owed %+v, want nothing (resize hears of the change from the handled essence)", st.Behind)
	}
}
