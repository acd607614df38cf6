package decide

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// failedPermanentlyAt is the progress of a callback that failed permanently at the
// essence of an object of that size.
func failedPermanentlyAt(size int64) *state.Progress {
	return &state.Progress{Attempts: 1, First: now.Add(-time.Minute), Failed: true, Digest: digestOf(object(size, nil))}
}

func TestDecideCreateThatFailedPermanently(t *testing.T) {
	twoCreates := testOperator()
	twoCreates.Spec.Callbacks = append([]spec.Callback{{ID: "register", Events: []spec.Event{spec.EventCreate}}}, twoCreates.Spec.Callbacks...)
	tests := []struct {
		name       string
		op         *spec.WebhookOperator
		size       int64
		state      func(t *testing.T) *state.State
		wantWork   []string
		wantRound  string // StartRound
		wantWaitOn []string
	}{
		{
			name: "is not called again while the essence is unchanged; sync and timers wait for it",
			op:   testOperator(), size: 3,
			state: func(*testing.T) *state.State {
				return &state.State{Round: &state.Round{Event: "create"}, Progress: map[string]*state.Progress{"create": failedPermanentlyAt(3)}}
			},
			wantWaitOn: []string{"create"},
		},
		{
			name: "is called again, as create, once the essence changed",
			op:   testOperator(), size: 4,
			state: func(*testing.T) *state.State {
				return &state.State{Round: &state.Round{Event: "create"}, Progress: map[string]*state.Progress{"create": failedPermanentlyAt(3)}}
			},
			wantWork:   []string{"create:create"},
			wantWaitOn: []string{"create"},
		},
		{
			name: "is called again alone when the other create callbacks succeeded",
			op:   twoCreates, size: 4,
			state: func(*testing.T) *state.State {
				return &state.State{Round: &state.Round{Event: "create", Done: []string{"register"}},
					Progress: map[string]*state.Progress{"create": failedPermanentlyAt(3)}}
			},
			wantWork:   []string{"create:create"},
			wantWaitOn: []string{"register", "create"},
		},
		{
			// Annotations written before create rounds stayed open recorded
			// such an object as handled; it keeps that meaning.
			name: "recorded as handled by an earlier gateway: the change is an update",
			op:   testOperator(), size: 5,
			state: func(t *testing.T) *state.State {
				st := handled(t, object(3, nil))
				st.Progress = map[string]*state.Progress{"create": failedPermanentlyAt(3)}
				return st
			},
			wantWork:   []string{"update:resize"},
			wantRound:  "update",
			wantWaitOn: []string{"resize"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A sync digest that changed and a timer that is due: neither
			// may run while create has not succeeded.
			mem := Memory{Seen: true, SyncDigest: "other", TimerNext: map[string]time.Time{"backup": now.Add(-time.Second)}}
			plan := Decide(Input{Operator: tt.op, Object: object(tt.size, nil), State: tt.state(t), Memory: &mem,
				SyncDigest: "s", HoldsFinalizer: true, Now: now})
			if tt.wantRound == "update" {
				// Handled: sync and the timer run as usual.
				tt.wantWork = append(tt.wantWork, "sync:status", "timer:backup")
			}
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
			if got := startedRound(plan); got != tt.wantRound {
				t.Errorf("StartRound = %q, want %q", got, tt.wantRound)
			}
			if !slices.Equal(plan.RoundCallbacks, tt.wantWaitOn) {
				t.Errorf("RoundCallbacks = %v, want %v", plan.RoundCallbacks, tt.wantWaitOn)
			}
		})
	}
}

func TestDecideRequeueWhileASiblingCreateFailedPermanently(t *testing.T) {
	op := testOperator()
	op.Spec.Callbacks = append([]spec.Callback{{ID: "register", Events: []spec.Event{spec.EventCreate}}}, op.Spec.Callbacks...)
	st := &state.State{Round: &state.Round{Event: "create", Done: []string{"register"}},
		Progress: map[string]*state.Progress{"create": failedPermanentlyAt(3)}}
	mem := Memory{Seen: true, Requeue: map[RequeueKey]time.Time{{"register", spec.EventCreate}: now.Add(-time.Second)}}
	plan := Decide(Input{Operator: op, Object: object(3, nil), State: st, Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
	if got, want := workIDs(plan), []string{"create:register"}; !slices.Equal(got, want) {
		t.Errorf("work = %v, want %v: register succeeded and asked to be called again", got, want)
	}
}

func TestDecideRequeuedCall(t *testing.T) {
	tests := []struct {
		name     string
		progress *state.Progress
		wantWork []string
		wantWake time.Time
	}{
		{
			name:     "is called with its event once due",
			wantWork: []string{"create:create"},
			wantWake: now.Add(30 * time.Second), // the timer's initial delay
		},
		{
			name:     "that failed waits for its backoff",
			progress: &state.Progress{Attempts: 1, First: now.Add(-time.Second), Next: now.Add(5 * time.Second), Digest: digestOf(object(3, nil))},
			wantWake: now.Add(5 * time.Second),
		},
		{
			name:     "that failed is retried once its backoff passed",
			progress: &state.Progress{Attempts: 1, First: now.Add(-time.Minute), Next: now.Add(-time.Second), Digest: digestOf(object(3, nil))},
			wantWork: []string{"create:create"},
			wantWake: now.Add(30 * time.Second),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := handled(t, object(3, nil))
			if tt.progress != nil {
				st.Progress = map[string]*state.Progress{"create": tt.progress}
			}
			mem := Memory{Seen: true, SyncDigest: "s", SyncedAt: now,
				Requeue: map[RequeueKey]time.Time{{"create", spec.EventCreate}: now.Add(-2 * time.Second)}}
			plan := Decide(Input{Operator: testOperator(), Object: object(3, nil), State: st, Memory: &mem,
				SyncDigest: "s", HoldsFinalizer: true, Now: now})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
			if !plan.Wake.Equal(tt.wantWake) {
				t.Errorf("wake = %v, want %v", plan.Wake, tt.wantWake)
			}
		})
	}
}

// A requeued call is a call of its event like any other: an update carries
// old and diff against the last handled essence (or says oldUnavailable),
// and every call is held to when.labels and when.annotations, which filter
// every event (docs/contract.md). when.fields is not: a requeue is no change
// of the object, and the handler asked to be called again.
func TestARequeuedCallIsACallOfItsEvent(t *testing.T) {
	cached := map[string]string{"tier": "cache"}
	onlyCached := &spec.When{Labels: map[string]string{"tier": "cache"}}
	tests := []struct {
		name      string
		callback  spec.Callback
		requeued  spec.Event
		obj       *unstructured.Unstructured
		state     func(t *testing.T) *state.State
		wantWork  []string
		wantOld   any // the old essence's spec.size; nil: no old
		wantDiff  []string
		wantNoOld bool // oldUnavailable
	}{
		{
			name:     "an update once its round ended carries old, the handled essence, and no change",
			callback: spec.Callback{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
			requeued: spec.EventUpdate,
			obj:      object(5, nil),
			state:    func(t *testing.T) *state.State { return handled(t, object(5, nil)) },
			wantWork: []string{"update:resize"},
			wantOld:  int64(5),
		},
		{
			name:     "an update while its round is open carries the round's old and diff",
			callback: spec.Callback{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
			requeued: spec.EventUpdate,
			obj:      object(5, nil),
			state: func(t *testing.T) *state.State {
				st := handled(t, object(3, nil))
				// resize succeeded (and asked to be called again); a sibling still fails.
				st.Round = &state.Round{Event: string(spec.EventUpdate), Done: []string{"resize"}, Digest: digestOf(object(5, nil))}
				return st
			},
			wantWork: []string{"update:resize"},
			wantOld:  int64(3),
			wantDiff: []string{"spec.size"},
		},
		{
			name:     "an update whose handled essence was not kept says oldUnavailable",
			callback: spec.Callback{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
			requeued: spec.EventUpdate,
			obj:      object(5, nil),
			state: func(t *testing.T) *state.State {
				st := handled(t, object(5, nil))
				st.Essence = nil
				return st
			},
			wantWork:  []string{"update:resize"},
			wantNoOld: true,
		},
		{
			name:     "an update of an object when.labels still matches is called",
			callback: spec.Callback{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: onlyCached},
			requeued: spec.EventUpdate,
			obj:      object(5, cached),
			state:    func(t *testing.T) *state.State { return handled(t, object(5, cached)) },
			wantWork: []string{"update:resize"},
			wantOld:  int64(5),
		},
		{
			name:     "an update of an object when.labels no longer matches is not called",
			callback: spec.Callback{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: onlyCached},
			requeued: spec.EventUpdate,
			obj:      object(5, nil),
			state:    func(t *testing.T) *state.State { return handled(t, object(5, nil)) },
		},
		{
			name:     "an update of an object when.annotations no longer matches is not called",
			callback: spec.Callback{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Annotations: map[string]string{"example.com/managed": spec.FilterPresent}}},
			requeued: spec.EventUpdate,
			obj:      object(5, nil),
			state:    func(t *testing.T) *state.State { return handled(t, object(5, nil)) },
		},
		{
			name:     "a create of an object when.labels no longer matches is not called",
			callback: spec.Callback{ID: "register", Events: []spec.Event{spec.EventCreate}, When: onlyCached},
			requeued: spec.EventCreate,
			obj:      object(5, nil),
			state:    func(t *testing.T) *state.State { return handled(t, object(5, nil)) },
		},
		{
			name:     "a resume of an object when.labels no longer matches is not called",
			callback: spec.Callback{ID: "check", Events: []spec.Event{spec.EventResume}, When: onlyCached},
			requeued: spec.EventResume,
			obj:      object(5, nil),
			state:    func(t *testing.T) *state.State { return handled(t, object(5, nil)) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := testOperator()
			op.Spec.Callbacks = []spec.Callback{tt.callback}
			mem := Memory{Seen: true, Requeue: map[RequeueKey]time.Time{{tt.callback.ID, tt.requeued}: now.Add(-time.Second)}}
			plan := Decide(Input{Operator: op, Object: tt.obj, State: tt.state(t), Memory: &mem, Now: now})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Fatalf("work = %v, want %v", got, tt.wantWork)
			}
			if len(plan.Work) == 0 {
				return
			}
			w := plan.Work[0]
			var old any
			if w.Old != nil {
				old = w.Old["spec"].(map[string]any)["size"]
			}
			if old != tt.wantOld {
				t.Errorf("old spec.size = %v (%T), want %v (%T)", old, old, tt.wantOld, tt.wantOld)
			}
			var paths []string
			for _, op := range w.Diff {
				paths = append(paths, op.Path)
			}
			if !slices.Equal(paths, tt.wantDiff) {
				t.Errorf("diff paths = %v, want %v", paths, tt.wantDiff)
			}
			if w.OldUnavailable != tt.wantNoOld {
				t.Errorf("oldUnavailable = %v, want %v", w.OldUnavailable, tt.wantNoOld)
			}
		})
	}
}

// A callback owed a taken-back change is called in its round with the
// essence it acted on as old; its requeued call (it answered requeueAfter
// while a sibling owed the same still fails) is a call of that round, so it
// carries the same old and diff, not the handled essence's (which is the
// essence now: an empty diff).
func TestARequeuedUpdateOfACallbackOwedATakenBackChangeCarriesWhatItActedOn(t *testing.T) {
	tests := []struct {
		name      string
		kept      bool // the essence they acted on was kept
		wantOld   any  // its spec.size; nil: none
		wantDiff  []string
		wantNoOld bool
	}{
		{name: "the essence it acted on as old", kept: true, wantOld: int64(5), wantDiff: []string{"spec.size"}},
		{name: "oldUnavailable when that essence was not kept", wantNoOld: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := testOperator()
			op.Spec.Callbacks = []spec.Callback{
				{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
				{ID: "audit", Events: []spec.Event{spec.EventUpdate}},
			}
			// Both acted on size 5, which was taken back to 3 (handled) while a
			// third callback failed; resize was called with 5 → 3 and asked to
			// be called again; audit, owed the same, backs off.
			st := handled(t, object(3, nil))
			seen := &state.Seen{IDs: []string{"resize", "audit"}, Digest: digestOf(object(5, nil))}
			if tt.kept {
				kept, err := json.Marshal(essence.Of(object(5, nil))) // small: kept as plain JSON
				if err != nil {
					t.Fatal(err)
				}
				seen.Essence = kept
			}
			st.Behind = []*state.Seen{seen}
			st.Round = &state.Round{Event: string(spec.EventUpdate), Done: []string{"resize"}, Digest: digestOf(object(3, nil))}
			st.Progress = map[string]*state.Progress{"audit": {Event: string(spec.EventUpdate), Attempts: 1, First: now.Add(-time.Second),
				Next: now.Add(time.Minute), Digest: digestOf(object(3, nil))}}
			mem := Memory{Seen: true, Requeue: map[RequeueKey]time.Time{{"resize", spec.EventUpdate}: now.Add(-time.Second)}}

			plan := Decide(Input{Operator: op, Object: object(3, nil), State: st, Memory: &mem, Now: now})
			if got := workIDs(plan); !slices.Equal(got, []string{"update:resize"}) {
				t.Fatalf("work = %v, want the requeued update of resize alone", got)
			}
			w := plan.Work[0]
			var old any
			if w.Old != nil {
				old = w.Old["spec"].(map[string]any)["size"]
			}
			var paths []string
			for _, op := range w.Diff {
				paths = append(paths, op.Path)
			}
			if old != tt.wantOld || !slices.Equal(paths, tt.wantDiff) || w.OldUnavailable != tt.wantNoOld {
				t.Errorf("old spec.size %v, diff %v, oldUnavailable %v; want %v, %v, %v (as its round's call)", old, paths, w.OldUnavailable, tt.wantOld, tt.wantDiff, tt.wantNoOld)
			}
		})
	}
}
