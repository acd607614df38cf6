package decide

import (
	"slices"
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks/essence"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

var now = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func dur(d time.Duration) *spec.Duration { return &spec.Duration{Duration: d} }

func testOperator() *spec.WebhookOperator {
	return &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
			{ID: "status", Events: []spec.Event{spec.EventSync}},
			{ID: "backup", Events: []spec.Event{spec.EventTimer}, Interval: dur(time.Hour), InitialDelay: dur(30 * time.Second)},
		}},
	}
}

func object(size int64, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
		"metadata": map[string]any{"name": "example", "namespace": "default"},
		"spec":     map[string]any{"size": size},
	}}
	u.SetLabels(labels)
	return u
}

func handled(t *testing.T, obj *unstructured.Unstructured) *state.State {
	t.Helper()
	st := &state.State{}
	if err := st.SetHandled(essence.Of(obj), state.DefaultEssenceCap); err != nil {
		t.Fatal(err)
	}
	return st
}

// startedRound is the event of the round plan starts, "" for none.
func startedRound(plan Plan) string {
	if plan.StartRound == nil {
		return ""
	}
	return plan.StartRound.Event
}

func workIDs(p Plan) []string {
	var ids []string
	for _, w := range p.Work {
		ids = append(ids, string(w.Event)+":"+w.Callback.ID)
	}
	return ids
}

func TestDecide(t *testing.T) {
	deleting := object(3, nil)
	deleting.SetDeletionTimestamp(&metav1.Time{Time: now})
	released := deleting.DeepCopy()
	released.SetAnnotations(map[string]string{ReleaseAnnotation: "true"})

	tests := []struct {
		name        string
		obj         *unstructured.Unstructured
		state       func(t *testing.T) *state.State
		mem         Memory
		finalizer   bool
		wantWork    []string
		wantAddFin  bool
		wantRelease bool
		wantRound   string
	}{
		{
			name:       "new object starts a create round and asks for the finalizer",
			obj:        object(3, nil),
			state:      func(*testing.T) *state.State { return &state.State{} },
			wantWork:   []string{"create:create"},
			wantAddFin: true,
			wantRound:  "create",
		},
		{
			name:      "unchanged handled object only syncs",
			obj:       object(3, nil),
			state:     func(t *testing.T) *state.State { return handled(t, object(3, nil)) },
			mem:       Memory{Seen: true, SyncDigest: "old"},
			finalizer: true,
			wantWork:  []string{"sync:status"},
		},
		{
			name:      "spec.size change calls the filtered update callback",
			obj:       object(5, nil),
			state:     func(t *testing.T) *state.State { return handled(t, object(3, nil)) },
			mem:       Memory{Seen: true, SyncDigest: "s", SyncedAt: now},
			finalizer: true,
			wantWork:  []string{"update:resize"},
			wantRound: "update",
		},
		{
			name:      "label-only change calls no spec.size callback",
			obj:       object(3, map[string]string{"tier": "cache"}),
			state:     func(t *testing.T) *state.State { return handled(t, object(3, nil)) },
			mem:       Memory{Seen: true, SyncDigest: "s", SyncedAt: now},
			finalizer: true,
			wantRound: "update",
		},
		{
			name:      "deleting object with our finalizer calls delete",
			obj:       deleting,
			state:     func(t *testing.T) *state.State { return handled(t, object(3, nil)) },
			finalizer: true,
			wantWork:  []string{"delete:cleanup"},
			wantRound: "delete",
		},
		{
			name:     "deleting object without our finalizer is left alone",
			obj:      deleting,
			state:    func(t *testing.T) *state.State { return handled(t, object(3, nil)) },
			wantWork: nil,
		},
		{
			name:        "release annotation lets the finalizer go without calling",
			obj:         released,
			state:       func(t *testing.T) *state.State { return handled(t, object(3, nil)) },
			finalizer:   true,
			wantRelease: true,
		},
		{
			name: "callback in backoff is not called before its next retry",
			obj:  object(3, nil),
			state: func(*testing.T) *state.State {
				return &state.State{Round: &state.Round{Event: "create"}, Progress: map[string]*state.Progress{
					"create": {Attempts: 2, First: now.Add(-time.Minute), Next: now.Add(time.Second), Digest: digestOf(object(3, nil))},
				}}
			},
			finalizer: true,
		},
		{
			name: "a changed essence ends a callback's backoff wait",
			obj:  object(4, nil),
			state: func(*testing.T) *state.State {
				return &state.State{Round: &state.Round{Event: "create"}, Progress: map[string]*state.Progress{
					"create": {Attempts: 2, First: now.Add(-time.Minute), Next: now.Add(time.Hour), Digest: digestOf(object(3, nil))},
				}}
			},
			finalizer: true,
			wantWork:  []string{"create:create"},
		},
		{
			name:      "timer fires once its initial delay has passed",
			obj:       object(3, nil),
			state:     func(t *testing.T) *state.State { return handled(t, object(3, nil)) },
			mem:       Memory{Seen: true, SyncDigest: "s", SyncedAt: now, TimerNext: map[string]time.Time{"backup": now.Add(-time.Second)}},
			finalizer: true,
			wantWork:  []string{"timer:backup"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := tt.mem
			plan := Decide(Input{
				Operator: testOperator(), Object: tt.obj, State: tt.state(t), Memory: &mem,
				SyncDigest: "s", HoldsFinalizer: tt.finalizer, Now: now,
			})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
			if plan.AddFinalizer != tt.wantAddFin {
				t.Errorf("AddFinalizer = %v, want %v", plan.AddFinalizer, tt.wantAddFin)
			}
			if plan.ReleaseFinalizer != tt.wantRelease {
				t.Errorf("ReleaseFinalizer = %v, want %v", plan.ReleaseFinalizer, tt.wantRelease)
			}
			if got := startedRound(plan); got != tt.wantRound {
				t.Errorf("StartRound = %q, want %q", got, tt.wantRound)
			}
		})
	}
}

func TestDecideUpdateCarriesOldAndDiff(t *testing.T) {
	mem := Memory{Seen: true, SyncDigest: "s", SyncedAt: now}
	plan := Decide(Input{Operator: testOperator(), Object: object(5, nil), State: handled(t, object(3, nil)),
		Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
	if len(plan.Work) != 1 {
		t.Fatalf("work = %v, want one update", workIDs(plan))
	}
	w := plan.Work[0]
	if w.Old == nil {
		t.Fatal("update carries no old essence")
	}
	if len(w.Diff) != 1 || w.Diff[0].Path != "spec.size" || w.Diff[0].Op != "change" {
		t.Errorf("diff = %+v, want one change at spec.size", w.Diff)
	}
	if w.OldUnavailable {
		t.Error("an update with old is marked oldUnavailable")
	}
}

// Without the handled essence (dropped for size), an update has no old and
// no diff, says so, and when.fields cannot filter it out.
func TestDecideUpdateWithoutKeptEssenceSaysOldUnavailable(t *testing.T) {
	st := handled(t, object(3, map[string]string{"tier": "cache"}))
	st.Essence = nil
	mem := Memory{Seen: true, SyncDigest: "s", SyncedAt: now}
	// Only a label changed: with old, the spec.size filter would skip it.
	plan := Decide(Input{Operator: testOperator(), Object: object(3, map[string]string{"tier": "db"}), State: st,
		Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
	if len(plan.Work) != 1 || plan.Work[0].Event != spec.EventUpdate {
		t.Fatalf("work = %v, want the update called (nothing to filter on)", workIDs(plan))
	}
	if w := plan.Work[0]; !w.OldUnavailable || w.Old != nil || w.Diff != nil {
		t.Errorf("oldUnavailable %v, old %v, diff %v; want true, none, none", w.OldUnavailable, w.Old, w.Diff)
	}
}

func TestDecideWakesForBackoffAndTimers(t *testing.T) {
	next := now.Add(7 * time.Second)
	st := handled(t, object(3, nil))
	st.Progress = map[string]*state.Progress{"status": {Attempts: 1, First: now, Next: next, Digest: digestOf(object(3, nil))}}
	mem := Memory{Seen: true, SyncDigest: "other", SyncedAt: now}
	plan := Decide(Input{Operator: testOperator(), Object: object(3, nil), State: st,
		Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
	if len(plan.Work) != 0 {
		t.Fatalf("work = %v, want none while sync backs off and the timer waits", workIDs(plan))
	}
	if !plan.Wake.Equal(next) {
		t.Errorf("wake = %v, want the retry at %v", plan.Wake, next)
	}
	if got := mem.TimerNext["backup"]; !got.Equal(now.Add(30 * time.Second)) {
		t.Errorf("timer scheduled at %v, want initialDelay after now", got)
	}
}

func digestOf(obj *unstructured.Unstructured) string { return essence.Digest(essence.Of(obj)) }

// An operator without a delete callback still holds the finalizer while its
// objects may own children only the gateway deletes (tracked by label).
func TestDecideHoldsFinalizerForChildrenTrackedByLabel(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec:       spec.OperatorSpec{Callbacks: []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}},
	}
	deleting := object(3, nil)
	deleting.SetDeletionTimestamp(&metav1.Time{Time: now})
	tests := []struct {
		name            string
		obj             *unstructured.Unstructured
		byLabel, holds  bool
		wantAdd, wantRl bool
	}{
		{name: "children by label: the finalizer is added", obj: object(3, nil), byLabel: true, wantAdd: true},
		{name: "children by label: the finalizer is kept", obj: object(3, nil), byLabel: true, holds: true},
		{name: "no such children any more: the finalizer is released", obj: object(3, nil), holds: true, wantRl: true},
		{name: "deleting: released once there is nothing to call", obj: deleting, byLabel: true, holds: true, wantRl: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Decide(Input{
				Operator: op, Object: tt.obj, State: handled(t, object(3, nil)), Memory: &Memory{Seen: true},
				HoldsFinalizer: tt.holds, ChildrenByLabel: tt.byLabel, Now: now,
			})
			if plan.AddFinalizer != tt.wantAdd || plan.ReleaseFinalizer != tt.wantRl {
				t.Errorf("AddFinalizer, ReleaseFinalizer = %v, %v; want %v, %v", plan.AddFinalizer, plan.ReleaseFinalizer, tt.wantAdd, tt.wantRl)
			}
		})
	}
}

func TestUpdateRoundStartsOverWhenTheEssenceChanges(t *testing.T) {
	op := testOperator()
	op.Spec.Callbacks = []spec.Callback{
		{ID: "create", Events: []spec.Event{spec.EventCreate}},
		{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
		{ID: "audit", Events: []spec.Event{spec.EventUpdate}},
	}
	st := handled(t, object(1, nil))
	at2 := essence.Digest(essence.Of(object(2, nil)))
	// resize succeeded at size 2, audit is still failing.
	st.Round = &state.Round{Event: string(spec.EventUpdate), Done: []string{"resize"}, Digest: at2}
	mem := Memory{Seen: true}

	same := Decide(Input{Operator: op, Object: object(2, nil), State: st, Memory: &mem, Now: now})
	if got := workIDs(same); !slices.Equal(got, []string{"update:audit"}) || same.StartRound != nil {
		t.Errorf("same essence: work %v, start %v; want the open round to go on with audit alone", got, same.StartRound)
	}
	changed := Decide(Input{Operator: op, Object: object(3, nil), State: st, Memory: &mem, Now: now})
	if got := workIDs(changed); !slices.Equal(got, []string{"update:resize", "update:audit"}) {
		t.Errorf("changed essence: work %v, want resize called again with it, and audit", got)
	}
	if r := changed.StartRound; r == nil || r.Digest != essence.Digest(essence.Of(object(3, nil))) || len(r.Done) != 0 {
		t.Errorf("changed essence: start %+v, want a fresh update round at the new essence", r)
	}
	st.Round.Digest = "" // written before rounds kept their essence
	legacy := Decide(Input{Operator: op, Object: object(3, nil), State: st, Memory: &mem, Now: now})
	if got := workIDs(legacy); !slices.Equal(got, []string{"update:audit"}) {
		t.Errorf("round without digest: work %v, want it to go on as before", got)
	}
}

// when.fields names a label or annotation key whole, dots and all, and a
// change that brings or takes all of metadata fires only the fields whose
// value it changed (docs/registration.md).
func TestWhenFieldsMatchTheChangedKeyExactly(t *testing.T) {
	const name = "app.kubernetes.io/name"
	tests := []struct {
		name        string
		field       string
		before, now map[string]string // the object's labels
		wantCalled  bool
	}{
		{"a label key is no prefix of a dotted one", "metadata.labels.app", map[string]string{name: "a"}, map[string]string{name: "b"}, false},
		{"a dotted label key is named whole", "metadata.labels." + name, map[string]string{name: "a"}, map[string]string{name: "b"}, true},
		{"a dotted label key does not match its first part's change", "metadata.labels." + name,
			map[string]string{"app": "a", name: "x"}, map[string]string{"app": "b", name: "x"}, false},
		{"a label key matches its own change next to a dotted one", "metadata.labels.app",
			map[string]string{"app": "a", name: "x"}, map[string]string{"app": "b", name: "x"}, true},
		{"the first label does not fire another label's field", "metadata.labels.owner", nil, map[string]string{"tier": "cache"}, false},
		{"the first label fires its own field", "metadata.labels.tier", nil, map[string]string{"tier": "cache"}, true},
		{"the last label going fires its own field", "metadata.labels." + name, map[string]string{name: "a"}, nil, true},
		{"the last label going does not fire another label's field", "metadata.labels.owner", map[string]string{name: "a"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := testOperator()
			op.Spec.Callbacks = []spec.Callback{{ID: "watch", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{tt.field}}}}
			mem := Memory{Seen: true}
			plan := Decide(Input{Operator: op, Object: object(3, tt.now), State: handled(t, object(3, tt.before)), Memory: &mem, Now: now})
			if startedRound(plan) != string(spec.EventUpdate) {
				t.Fatalf("StartRound = %q, want an update round: the labels changed", startedRound(plan))
			}
			var want []string
			if tt.wantCalled {
				want = []string{"update:watch"}
			}
			if got := workIDs(plan); !slices.Equal(got, want) {
				t.Errorf("work = %v, want %v (labels %v → %v, when.fields %s)", got, want, tt.before, tt.now, tt.field)
			}
		})
	}
}

// A change taken back while an update round is open (audit failing at
// size 2, resize done) owes the callbacks that acted on it the essence
// now, the handled one again, with what they saw as old; the others owe
// nothing. A later change reaches each from what it last saw.
func TestADroppedUpdateRoundOwesItsDoneCallbacksTheEssenceNow(t *testing.T) {
	op := testOperator()
	op.Spec.Callbacks = []spec.Callback{
		{ID: "create", Events: []spec.Event{spec.EventCreate}},
		{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
		{ID: "audit", Events: []spec.Event{spec.EventUpdate}},
	}
	at := func(size int64) string { return essence.Digest(essence.Of(object(size, nil))) }
	st := handled(t, object(1, nil))
	st.Round = &state.Round{Event: string(spec.EventUpdate), Done: []string{"resize"}, Digest: at(2)}
	if err := st.KeepRoundEssence(essence.Of(object(2, nil)), state.DefaultEssenceCap); err != nil {
		t.Fatal(err)
	}
	mem := Memory{Seen: true}

	back := Decide(Input{Operator: op, Object: object(1, nil), State: st, Memory: &mem, Now: now})
	if !back.DropRound || len(back.Behind) != 1 || back.Behind[0].Digest != at(2) {
		t.Fatalf("taken back: drop %v, behind %+v; want the round dropped, resize behind at size 2", back.DropRound, back.Behind)
	}
	if r := back.StartRound; r == nil || r.Event != string(spec.EventUpdate) || r.Digest != at(1) {
		t.Fatalf("taken back: start %+v, want an update round at the handled essence", r)
	}
	if got := workIDs(back); !slices.Equal(got, []string{"update:resize"}) || !slices.Equal(back.RoundCallbacks, []string{"resize"}) {
		t.Fatalf("taken back: work %v, round %v; want resize alone", got, back.RoundCallbacks)
	}
	if w := back.Work[0]; w.OldUnavailable || w.Old["spec"].(map[string]any)["size"] != int64(2) || len(w.Diff) != 1 || w.Diff[0].Path != "spec.size" {
		t.Errorf("taken back: old %v, diff %+v; want old at size 2 and a change of spec.size", w.Old, w.Diff)
	}

	// resize failed at size 1 too; then size 3: resize from 2, audit from 1.
	st.Round, st.Behind = back.StartRound, back.Behind
	later := Decide(Input{Operator: op, Object: object(3, nil), State: st, Memory: &mem, Now: now})
	if got := workIDs(later); !slices.Equal(got, []string{"update:resize", "update:audit"}) {
		t.Fatalf("later change: work %v, want resize and audit", got)
	}
	olds := map[string]any{}
	for _, w := range later.Work {
		olds[w.Callback.ID] = w.Old["spec"].(map[string]any)["size"]
	}
	if olds["resize"] != int64(2) || olds["audit"] != int64(1) {
		t.Errorf("later change: old sizes %v, want resize 2 (what it saw), audit 1 (handled)", olds)
	}

	// Taken back with nothing done: nothing is owed, no round starts.
	st = handled(t, object(1, nil))
	st.Round = &state.Round{Event: string(spec.EventUpdate), Digest: at(2)}
	none := Decide(Input{Operator: op, Object: object(1, nil), State: st, Memory: &mem, Now: now})
	if !none.DropRound || none.Behind != nil || none.StartRound != nil || len(none.Work) != 0 {
		t.Errorf("nothing done: drop %v, behind %+v, start %+v, work %v; want the round dropped and nothing else", none.DropRound, none.Behind, none.StartRound, workIDs(none))
	}
}

// A pass prunes by its sync answers only when all the object's sync
// callbacks answered: the plan names them, the one backing off (not
// called) included, and leaves out one whose when does not match.
func TestPlanNamesEverySyncCallbackOfTheObjectDueOrNot(t *testing.T) {
	op := testOperator()
	op.Spec.Callbacks = append(op.Spec.Callbacks,
		spec.Callback{ID: "config", Events: []spec.Event{spec.EventSync}},
		spec.Callback{ID: "premium", Events: []spec.Event{spec.EventSync}, When: &spec.When{Labels: map[string]string{"tier": "premium"}}})
	st := handled(t, object(3, nil))
	st.Progress = map[string]*state.Progress{"status": {Attempts: 1, First: now, Next: now.Add(time.Minute), Digest: digestOf(object(3, nil))}}
	mem := Memory{Seen: true, SyncDigest: "other", SyncedAt: now}
	plan := Decide(Input{Operator: op, Object: object(3, nil), State: st, Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
	if got, want := workIDs(plan), []string{"sync:config"}; !slices.Equal(got, want) {
		t.Fatalf("work = %v, want %v: status backs off", got, want)
	}
	if got, want := plan.SyncCallbacks, []string{"status", "config"}; !slices.Equal(got, want) {
		t.Errorf("sync callbacks = %v, want %v", got, want)
	}
}
