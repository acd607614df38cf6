package decide

import (
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// A callback's delete keeps its own retry record: it starts afresh, not in
// the backoff (or at the attempt count) of the same callback's failing
// update or create, and a failing delete waits out its own.
func TestADeleteKeepsItsOwnRetryRecord(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
			{ID: "main", Events: []spec.Event{spec.EventCreate, spec.EventUpdate, spec.EventDelete}},
		}},
	}
	deleting := object(3, nil)
	deleting.SetDeletionTimestamp(&metav1.Time{Time: now})
	backingOffFor := func(event string) *state.Progress {
		return &state.Progress{Event: event, Attempts: 2, First: now.Add(-time.Minute), Next: now.Add(time.Hour), Digest: digestOf(object(3, nil))}
	}
	tests := []struct {
		name         string
		round        *state.Round
		progress     *state.Progress
		wantWork     []string
		wantRetrying bool
	}{
		{
			name:     "a delete after the same callback's failing update is called at once",
			progress: backingOffFor("update"),
			wantWork: []string{"delete:main"},
		},
		{
			name:     "a delete after its failing create is called at once",
			round:    &state.Round{Event: "create"},
			progress: backingOffFor("create"),
			wantWork: []string{"delete:main"},
		},
		{
			name:         "a failing delete waits out its own backoff",
			round:        &state.Round{Event: "delete"},
			progress:     backingOffFor("delete"),
			wantRetrying: true,
		},
		{
			name:         "a record written before events were kept counts for every event",
			round:        &state.Round{Event: "delete"},
			progress:     backingOffFor(""),
			wantRetrying: true,
		},
		{
			name:     "another event's permanent failure does not hold the delete back",
			progress: &state.Progress{Event: "update", Failed: true, Attempts: 3, First: now, Digest: digestOf(object(3, nil))},
			wantWork: []string{"delete:main"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := handled(t, object(3, nil))
			st.Round = tt.round
			st.Progress = map[string]*state.Progress{"main": tt.progress}
			mem := Memory{Seen: true}
			plan := Decide(Input{Operator: op, Object: deleting, State: st, Memory: &mem, HoldsFinalizer: true, Now: now})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
			if got := Retrying(st.ProgressFor("main", string(spec.EventDelete)), plan.EssenceDigest); got != tt.wantRetrying {
				t.Errorf("a delete call continues the record's attempts: %v, want %v", got, tt.wantRetrying)
			}
		})
	}
}

// Events other than delete share a callback's retry record, as they always
// did: a callback handling update and timer (or sync) whose handler is down
// waits out one backoff for both, rather than each failure of one event
// letting the other run at once, as attempt 1 (a hot loop of calls).
func TestEventsBeforeDeletionShareTheirCallbacksBackoff(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
			{ID: "main", Events: []spec.Event{spec.EventUpdate, spec.EventTimer, spec.EventSync}, Interval: dur(time.Minute)},
		}},
	}
	for _, event := range []string{"update", "timer", "sync"} {
		t.Run("after a failing "+event, func(t *testing.T) {
			st := handled(t, object(3, nil))
			st.Progress = map[string]*state.Progress{"main": {Event: event, Attempts: 1, First: now, Next: now.Add(time.Hour), Digest: digestOf(object(3, nil))}}
			mem := Memory{Seen: true, SyncDigest: "old", TimerNext: map[string]time.Time{"main": now.Add(-time.Second)}}
			plan := Decide(Input{Operator: op, Object: object(3, nil), State: st, Memory: &mem, SyncDigest: "new", HoldsFinalizer: true, Now: now})
			if got := workIDs(plan); len(got) != 0 {
				t.Errorf("work = %v, want none before the backoff ends", got)
			}
		})
	}
}

// A sync that failed permanently is not called again until the essence
// changes (docs/contract.md).
func TestAPermanentlyFailedSyncWaitsForTheEssenceToChange(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
		}},
	}
	for _, tt := range []struct {
		name     string
		size     int64
		wantWork []string
	}{
		{"at the same essence", 3, nil},
		{"once the essence changed", 4, []string{"sync:sync"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := handled(t, object(3, nil))
			st.Progress = map[string]*state.Progress{"sync": {Event: "sync", Attempts: 1, First: now, Failed: true, Digest: digestOf(object(3, nil))}}
			mem := Memory{Seen: true, SyncDigest: "old"}
			plan := Decide(Input{Operator: op, Object: object(tt.size, nil), State: st, Memory: &mem, SyncDigest: "new", HoldsFinalizer: true, Now: now})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
		})
	}
}

// A timer whose tick failed permanently (or spent maxAttempts) fires again
// at its next tick, as Kopf's does, at the same essence too: it stopped for
// good before, until the spec changed, after a short handler outage. The
// next tick is the one the engine set (an interval on); before it the plan
// only wakes for it, so a failed tick is no hot loop.
func TestATimerWhoseTickFailedFiresAgainAtItsNextTick(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
			{ID: "tick", Events: []spec.Event{spec.EventTimer}, Interval: dur(time.Minute)},
		}},
	}
	for _, tt := range []struct {
		name     string
		size     int64
		next     time.Time
		wantWork []string
		wantWake time.Time
	}{
		{"next tick due, same essence", 3, now.Add(-time.Second), []string{"timer:tick"}, time.Time{}},
		{"next tick due, essence changed", 4, now.Add(-time.Second), []string{"timer:tick"}, time.Time{}},
		{"before its next tick", 3, now.Add(time.Minute), nil, now.Add(time.Minute)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := handled(t, object(3, nil))
			st.Progress = map[string]*state.Progress{"tick": {Event: "timer", Attempts: 2, First: now, Failed: true, Digest: digestOf(object(3, nil))}}
			mem := Memory{Seen: true, TimerNext: map[string]time.Time{"tick": tt.next}}
			plan := Decide(Input{Operator: op, Object: object(tt.size, nil), State: st, Memory: &mem, HoldsFinalizer: true, Now: now})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
			if len(tt.wantWork) == 0 && !plan.Wake.Equal(tt.wantWake) {
				t.Errorf("wake = %v, want the next tick %v", plan.Wake, tt.wantWake)
			}
		})
	}
}

// An update's failing record does not make the same callback's sync due as
// a retry of its own: the sync ran with every update retry before.
func TestAnUpdatesFailureDoesNotMakeTheSyncDue(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
			{ID: "main", Events: []spec.Event{spec.EventUpdate, spec.EventSync}},
		}},
	}
	for _, tt := range []struct {
		event    string
		wantWork []string
	}{
		{"update", nil},
		{"sync", []string{"sync:main"}},
		{"", []string{"sync:main"}}, // written before events were kept
	} {
		t.Run("a record of "+tt.event, func(t *testing.T) {
			st := handled(t, object(3, nil))
			st.Progress = map[string]*state.Progress{"main": {Event: tt.event, Attempts: 2, First: now, Next: now.Add(-time.Second), Digest: digestOf(object(3, nil))}}
			mem := Memory{Seen: true, SyncDigest: "s", SyncedAt: now}
			plan := Decide(Input{Operator: op, Object: object(3, nil), State: st, Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
		})
	}
}

// A process that first sees a handled object with an update round open
// (its callback was failing when the last process stopped) calls resume
// first, as for any handled object; the update round is taken up again
// after it. Before, the open round went on and resume was never called.
func TestResumeComesFirstWhenAnUpdateRoundWasOpen(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
			{ID: "resume", Events: []spec.Event{spec.EventResume}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
		}},
	}
	open := func() *state.State {
		st := handled(t, object(3, nil))
		st.Round = &state.Round{Event: "update", Digest: digestOf(object(4, nil))}
		return st
	}
	for _, tt := range []struct {
		name      string
		seen      bool
		wantWork  []string
		wantRound string
	}{
		{"first seen by this process", false, []string{"resume:resume"}, "resume"},
		{"seen before", true, []string{"update:resize"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem := Memory{Seen: tt.seen, SyncDigest: "s", SyncedAt: now}
			plan := Decide(Input{Operator: op, Object: object(4, nil), State: open(), Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
			if got := startedRound(plan); got != tt.wantRound {
				t.Errorf("StartRound = %q, want %q", got, tt.wantRound)
			}
		})
	}
}

// A resume round whose callback keeps failing holds the update back only
// while the essence is the one it began at: a change starts the update
// round, and the resume callbacks not done go on beside it, requeued (due
// now, after their backoff), until they succeed. A done one is not called
// again, nor one when.labels no longer selects; a round written before
// resume rounds kept their essence runs on as it was.
func TestAFailingResumeRoundDoesNotHoldAChangeBack(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
			{ID: "warmup", Events: []spec.Event{spec.EventResume}},
			{ID: "done", Events: []spec.Event{spec.EventResume}},
			{ID: "tagged", Events: []spec.Event{spec.EventResume}, When: &spec.When{Labels: map[string]string{"tier": "cache"}}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
		}},
	}
	at3 := digestOf(object(3, nil))
	failing := &state.Progress{Event: "resume", Attempts: 4, First: now.Add(-time.Minute), Next: now.Add(time.Minute), Digest: at3}
	for _, tt := range []struct {
		name        string
		roundDigest string
		size        int64
		wantWork    []string
		wantRound   string
		wantRequeue []string
	}{
		{"the essence it began at", at3, 3, nil, "", nil},
		{"a change since it began", at3, 4, []string{"update:resize", "resume:warmup"}, "update", []string{"warmup"}},
		{"a round written without its essence", "", 4, []string{"resume:warmup"}, "", nil}, // the change ended its backoff
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := handled(t, object(3, nil))
			st.Round = &state.Round{Event: "resume", Done: []string{"done"}, Digest: tt.roundDigest}
			st.Progress = map[string]*state.Progress{"warmup": failing}
			mem := Memory{Seen: true, SyncDigest: "s", SyncedAt: now}
			plan := Decide(Input{Operator: op, Object: object(tt.size, nil), State: st, Memory: &mem, SyncDigest: "s", Now: now})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
			if got := startedRound(plan); got != tt.wantRound {
				t.Errorf("StartRound = %q, want %q", got, tt.wantRound)
			}
			var requeued []string
			for key, at := range mem.Requeue {
				if key.Event == spec.EventResume && !at.After(now) {
					requeued = append(requeued, key.Callback)
				}
			}
			if !slices.Equal(requeued, tt.wantRequeue) {
				t.Errorf("resumes requeued: %v, want %v", requeued, tt.wantRequeue)
			}
		})
	}
}

// Objects synced together (all of them at a gateway's start) are synced
// again spread over a tenth of the resync period, each at its own steady
// period, rather than all at once.
func TestResyncIsSpreadByObject(t *testing.T) {
	const period = 10 * time.Minute
	lowest, highest := 2*period, time.Duration(0)
	for i := range 1000 {
		uid := types.UID(fmt.Sprintf("uid-%d", i))
		p := resyncOf(period, uid)
		if p < period || p >= period+period/10 {
			t.Fatalf("resync of %s = %v, want within [%v, %v)", uid, p, period, period+period/10)
		}
		if again := resyncOf(period, uid); again != p {
			t.Fatalf("resync of %s = %v, then %v: want the same", uid, p, again)
		}
		lowest, highest = min(lowest, p), max(highest, p)
	}
	if highest-lowest < period/20 {
		t.Errorf("1000 objects' resyncs span %v, want most of %v", highest-lowest, period/10)
	}
}

func TestSyncWakesAtTheObjectsOwnResync(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec:       spec.OperatorSpec{Callbacks: []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}},
	}
	obj := object(3, nil)
	obj.SetUID("uid-7")
	mem := Memory{Seen: true, SyncDigest: "s", SyncedAt: now.Add(-10 * time.Minute)}
	plan := Decide(Input{Operator: op, Object: obj, State: handled(t, object(3, nil)), Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
	if want := mem.SyncedAt.Add(resyncOf(10*time.Minute, "uid-7")); len(plan.Work) != 0 || !plan.Wake.Equal(want) {
		t.Errorf("work %v, wake %v; want none before %v", workIDs(plan), plan.Wake, want)
	}
}

// A callback's events other than delete share its backoff wait, not its
// retry record: one event's permanent failure does not stop the other's
// calls (before, a sync that failed permanently held the update round open
// until the essence changed, and an update that failed permanently stopped
// the sync), and a failure of one event holds the other back only until
// its own next retry.
func TestAnotherEventsFailureDoesNotStandForTheCallbacksOwn(t *testing.T) {
	op, at := updateAndSync(), digestOf(object(4, nil))
	failed := func(event string) *state.Progress {
		return &state.Progress{Event: event, Attempts: 3, First: now.Add(-time.Minute), Failed: true, Digest: at}
	}
	for _, tt := range []struct {
		name     string
		progress *state.Progress
		wantWork []string
	}{
		{"the sync failed permanently", failed("sync"), []string{"update:main"}},
		{"the update failed permanently", failed("update"), []string{"sync:main"}},
		{"the sync's backoff is over", &state.Progress{Event: "sync", Attempts: 2, First: now, Next: now.Add(-time.Second), Digest: at}, []string{"update:main", "sync:main"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := handled(t, object(3, nil))
			st.Round = &state.Round{Event: "update", Digest: at}
			st.Progress = map[string]*state.Progress{"main": tt.progress}
			mem := Memory{Seen: true, SyncDigest: "old"}
			plan := Decide(Input{Operator: op, Object: object(4, nil), State: st, Memory: &mem, SyncDigest: "new", HoldsFinalizer: true, Now: now})
			if got := workIDs(plan); !slices.Equal(got, tt.wantWork) {
				t.Errorf("work = %v, want %v", got, tt.wantWork)
			}
			if p := st.ProgressFor("main", "update"); tt.progress.Event != "update" && Retrying(p, plan.EssenceDigest) {
				t.Errorf("the update continues the %s's record (attempt %d)", tt.progress.Event, p.Attempts+1)
			}
		})
	}
}

// While the sync waits out its backoff, the same callback's update waits
// too, until the sync's retry, and then goes on at its own attempt count.
func TestAnotherEventsBackoffHoldsTheCallbackBackWithoutTakingItsCount(t *testing.T) {
	op, at := updateAndSync(), digestOf(object(4, nil))
	st := handled(t, object(3, nil))
	st.Round = &state.Round{Event: "update", Digest: at}
	update := st.ProgressOf("main", "update")
	update.Attempts, update.First, update.Next, update.Digest = 2, now.Add(-time.Minute), now.Add(-time.Second), at
	sync := st.ProgressOf("main", "sync")
	sync.Attempts, sync.First, sync.Next, sync.Digest = 1, now, now.Add(time.Hour), at
	mem := Memory{Seen: true, SyncDigest: "old"}
	plan := Decide(Input{Operator: op, Object: object(4, nil), State: st, Memory: &mem, SyncDigest: "new", HoldsFinalizer: true, Now: now})
	if got := workIDs(plan); len(got) != 0 || !plan.Wake.Equal(sync.Next) {
		t.Errorf("work = %v, wake %v; want none before the sync's retry at %v", got, plan.Wake, sync.Next)
	}
	later := now.Add(time.Hour)
	plan = Decide(Input{Operator: op, Object: object(4, nil), State: st, Memory: &mem, SyncDigest: "new", HoldsFinalizer: true, Now: later})
	if got := workIDs(plan); !slices.Equal(got, []string{"update:main", "sync:main"}) {
		t.Errorf("work = %v at the sync's retry, want the update and the sync", got)
	}
	if p := st.ProgressFor("main", "update"); !Retrying(p, plan.EssenceDigest) || p.Attempts != 2 {
		t.Errorf("the update's record = %+v, want its own 2 attempts to go on from", p)
	}
}

// updateAndSync is an operator of one callback, main, on update and sync.
func updateAndSync() *spec.WebhookOperator {
	return &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
			{ID: "main", Events: []spec.Event{spec.EventUpdate, spec.EventSync}},
		}},
	}
}

// A sync callback that a change (or its resync) finds held back by its
// update's backoff is owed that change: the other sync callbacks' calls in
// the pass record it as synced, so it is called alone once the backoff
// ends, and not before; its success ends what is owed (engine). One whose
// sync failed for good is owed nothing, and one backing off on its own
// sync's failure has that record to call it.
func TestASyncHeldBackByItsUpdatesBackoffIsOwedTheChange(t *testing.T) {
	op := updateAndSync()
	op.Spec.Callbacks = append(op.Spec.Callbacks, spec.Callback{ID: "watcher", Events: []spec.Event{spec.EventSync}})
	at := digestOf(object(4, nil))
	for _, tt := range []struct {
		name     string
		record   func(st *state.State)
		wantOwed bool
		wantWork []string // once the backoff ended and the change was recorded
	}{
		{"its update backing off", func(*state.State) {}, true, []string{"update:main", "sync:main"}},
		{"its own sync backing off too", func(st *state.State) {
			p := st.ProgressOf("main", "sync")
			p.Attempts, p.First, p.Next, p.Digest = 1, now, now.Add(time.Minute), at
		}, false, []string{"update:main", "sync:main"}},
		{"its sync failed for good", func(st *state.State) {
			p := st.ProgressOf("main", "sync")
			p.Attempts, p.First, p.Failed, p.Digest = 1, now, true, at
		}, false, []string{"update:main"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := handled(t, object(3, nil))
			st.Round = &state.Round{Event: "update", Digest: at}
			update := st.ProgressOf("main", "update")
			update.Attempts, update.First, update.Next, update.Digest = 1, now, now.Add(time.Minute), at
			tt.record(st)
			mem := Memory{Seen: true, SyncDigest: "before the change", SyncedAt: now.Add(-time.Minute)}
			plan := Decide(Input{Operator: op, Object: object(4, nil), State: st, Memory: &mem, SyncDigest: "changed", HoldsFinalizer: true, Now: now})
			if got := workIDs(plan); !plan.FullSync || !slices.Equal(got, []string{"sync:watcher"}) {
				t.Fatalf("the change's pass: work %v (full %v), want watcher's sync alone while main backs off", got, plan.FullSync)
			}
			owed, ok := mem.Requeue[RequeueKey{"main", spec.EventSync}]
			if ok != tt.wantOwed || ok && !owed.Equal(now) {
				t.Errorf("main's sync owed: %v at %v, want %v", ok, owed, tt.wantOwed)
			}
			// watcher's call recorded the change.
			mem.SyncDigest, mem.SyncedAt = "changed", now
			plan = Decide(Input{Operator: op, Object: object(4, nil), State: st, Memory: &mem, SyncDigest: "changed", HoldsFinalizer: true, Now: now.Add(30 * time.Second)})
			if got := workIDs(plan); len(got) != 0 || !plan.Wake.Equal(now.Add(time.Minute)) {
				t.Errorf("within the backoff: work %v, wake %v; want none until %v", got, plan.Wake, now.Add(time.Minute))
			}
			plan = Decide(Input{Operator: op, Object: object(4, nil), State: st, Memory: &mem, SyncDigest: "changed", HoldsFinalizer: true, Now: now.Add(time.Minute)})
			if got := workIDs(plan); plan.FullSync || !slices.Equal(got, tt.wantWork) {
				t.Errorf("once the backoff ended: work %v (full %v), want %v alone", got, plan.FullSync, tt.wantWork)
			}
		})
	}
}
