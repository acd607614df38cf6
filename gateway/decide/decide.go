// Package decide is the "decide" arrow: from an object, its durable state
// and what this gateway remembers of it, it works out which callbacks are
// due now and when to look again. Pure logic: no I/O, an explicit clock.
package decide

import (
	"hash/fnv"
	"maps"
	"time"

	"github.com/opgate/opgate/callbacks/essence"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// ReleaseAnnotation lets a user release a finalizer a failing delete
// callback holds.
const ReleaseAnnotation = "opgate.dev/release-finalizer"

// ReconcileRequestAnnotation asks the gateway to end any backoff wait and
// run the object's due callbacks, and sync and resume, once (Flux's
// reconcile.fluxcd.io/requestedAt convention): each new value fires once.
const ReconcileRequestAnnotation = "opgate.dev/reconcile-requested-at"

// Memory is what one gateway process remembers of one object. It is lost on
// restart on purpose: resume, sync and timers start afresh, like Kopf.
type Memory struct {
	Seen bool // handled at least once since this gateway started
	// SyncDigest and SyncedAt: the digest of parent+children+related and
	// the time at the last pass that called every due sync callback
	// successfully (Plan.FullSync); a call alone, for its requeueAfter or
	// retry, moves neither, so it holds no other's resync back.
	SyncDigest    string
	SyncedAt      time.Time
	EssenceDigest string    // last essence seen (not necessarily handled)
	ChangedAt     time.Time // when EssenceDigest last changed, for timers' idle
	TimerNext     map[string]time.Time
	// Requeue: when each requeueAfter a handler answered is due, and the
	// calls owed as one (a resume a change ended the round of, a sync
	// held back from a change by its other event's backoff).
	Requeue map[RequeueKey]time.Time
}

// RequeueKey names a handler's request to be called again: a callback's,
// for one event. Each event's is its own: a call of the callback for
// another event neither ends nor holds it back.
type RequeueKey struct {
	Callback string
	Event    spec.Event
}

// Input is everything Decide looks at.
type Input struct {
	Operator       *spec.WebhookOperator
	Object         *unstructured.Unstructured
	State          *state.State
	Memory         *Memory
	SyncDigest     string // digest of parent+children+related now
	HoldsFinalizer bool
	// ChildrenByLabel: the object may own children the garbage collector
	// cannot reach (tracked by label), which the gateway deletes itself
	// before letting the object go, so it holds the finalizer.
	ChildrenByLabel bool
	Now             time.Time
}

// Work is one callback to call now.
type Work struct {
	Callback spec.Callback
	Event    spec.Event
	Old      map[string]any // update only: the last handled essence, when kept
	Diff     []callbacks.DiffOp
	// OldUnavailable: an update whose Old was not kept (see state.State).
	OldUnavailable bool
}

// Plan is what to do with an object now.
type Plan struct {
	AddFinalizer     bool
	ReleaseFinalizer bool
	// StartRound, when set, begins a new create/update/resume/delete round
	// (replacing any finished one, or a resume round the essence changed
	// since) before Work runs.
	StartRound *state.Round
	// DropRound: the open update round is over, its essence changed since
	// it began; Behind is the state's Behind after it (state.BehindAfterDrop).
	// Applied before StartRound.
	DropRound bool
	Behind    []*state.Seen
	// RoundCallbacks are the ids the current round waits for: once all are
	// in Round.Done the round ends (and, for create/update, its essence is
	// recorded as handled).
	RoundCallbacks []string
	// SyncCallbacks are the sync callbacks whose when.labels and
	// when.annotations match the object, due or not: only their answers
	// together, all in one pass, are its desired children (pruning).
	SyncCallbacks []string
	// FullSync: the sync callbacks are due for a change or resyncPeriod,
	// not only for a requeueAfter or a retry: every sync Work is one, and
	// only once all of them succeeded are the sync digest and time recorded.
	FullSync bool
	Work     []Work
	// Wake is the earliest time something becomes due later (zero: nothing).
	Wake time.Time
	// EssenceDigest is the digest of the object's essence now.
	EssenceDigest string
	Essence       map[string]any
}

func (p *Plan) wakeAt(t time.Time) {
	if !t.IsZero() && (p.Wake.IsZero() || t.Before(p.Wake)) {
		p.Wake = t
	}
}

// Decide plans the callbacks due for one object.
func Decide(in Input) Plan {
	op, obj, st, mem := in.Operator, in.Object, in.State, in.Memory
	e := essence.Of(obj)
	plan := Plan{Essence: e, EssenceDigest: essence.Digest(e)}
	if mem.EssenceDigest != plan.EssenceDigest {
		mem.EssenceDigest, mem.ChangedAt = plan.EssenceDigest, in.Now
	}
	needsFinalizer := op.HasEvent(spec.EventDelete) || in.ChildrenByLabel

	if obj.GetDeletionTimestamp() != nil {
		if in.HoldsFinalizer {
			decideDelete(in, &plan)
		}
		return plan
	}
	switch {
	case needsFinalizer && !in.HoldsFinalizer:
		plan.AddFinalizer = true
	case !needsFinalizer && in.HoldsFinalizer:
		// The delete callback (or the kinds of children only the gateway
		// deletes) was removed from the operator: nothing will ever release
		// this finalizer unless we do it now.
		plan.ReleaseFinalizer = true
	}

	round, behind := st.Round, st.Behind
	if round != nil && round.Event == string(spec.EventUpdate) && round.Digest != "" && round.Digest != plan.EssenceDigest {
		// Changed since the update round began: the callbacks it counts
		// as done saw an older essence, and ending the round would record
		// the new one as handled without them. Start over with it; those
		// done are owed it even when it is the handled one again.
		behind = st.BehindAfterDrop(round)
		plan.DropRound, plan.Behind = true, behind
		round = nil
	}
	if round != nil && round.Event == string(spec.EventResume) && round.Digest != "" && round.Digest != plan.EssenceDigest {
		// Changed since the resume round began: a resume callback still
		// failing must not hold the update back for as long as it fails
		// (callbacks are independent). The round ends its hold; its
		// callbacks not done go on beside the update round, as requeued
		// resumes, with their retry records.
		requeueResumes(in, round)
		round = nil
	}
	if round != nil && round.Event == string(spec.EventUpdate) && !mem.Seen && op.HasEvent(spec.EventResume) {
		// First seen by this process with an update round open (its
		// callback failing when the last one stopped): resume comes first,
		// as for any handled object, and the update round is taken up
		// afresh after it (the essence is still not handled). Those that
		// acted on its essence are behind at it, as for a change: the
		// round after resume does not call them again, and should the
		// change be taken back meanwhile, they are owed the essence then.
		if round.Digest != "" {
			behind = st.BehindAfterDrop(round)
			plan.DropRound, plan.Behind = true, behind
		}
		round = nil
	}
	if round == nil {
		round = nextRound(op, st, behind, mem, plan.EssenceDigest)
		plan.StartRound = round
	}
	if round != nil {
		decideRound(in, round, behind, &plan)
	}
	// A callback that asked to be called again is, also while a sibling
	// create callback keeps the create round open.
	decideRequeues(in, behind, &plan)
	if st.Handled == "" && round != nil && round.Event == string(spec.EventCreate) {
		// Sync and timers begin once the object was created by its handler.
		return plan
	}
	decideSync(in, &plan)
	decideTimers(in, &plan)
	return plan
}

// nextRound picks the round to start, or nil when create/update/resume
// have nothing to do.
func nextRound(op *spec.WebhookOperator, st *state.State, behind []*state.Seen, mem *Memory, digest string) *state.Round {
	switch {
	case st.Handled == "":
		return &state.Round{Event: string(spec.EventCreate)}
	case !mem.Seen && op.HasEvent(spec.EventResume):
		return &state.Round{Event: string(spec.EventResume), Digest: digest}
	case st.Handled != digest || len(behind) > 0:
		return &state.Round{Event: string(spec.EventUpdate), Digest: digest}
	}
	return nil
}

// requeueResumes hands the callbacks of a resume round that are not done
// (those it would still call: when.labels and when.annotations match) to
// the requeue path (decideRequeues), due now: each is called, after its
// backoff, until it succeeds or fails permanently. One already requeued
// for resume stays as the handler asked.
func requeueResumes(in Input, round *state.Round) {
	mem := in.Memory
	for _, cb := range in.Operator.CallbacksFor(spec.EventResume) {
		if round.IsDone(cb.ID) || !matchesObject(cb, in.Object) {
			continue
		}
		key := RequeueKey{cb.ID, spec.EventResume}
		if _, ok := mem.Requeue[key]; ok {
			continue
		}
		if mem.Requeue == nil {
			mem.Requeue = map[RequeueKey]time.Time{}
		}
		mem.Requeue[key] = in.Now
	}
}

// updateOld is what an update call carries: the last handled essence and
// the diff from it to the essence now; nil, nil when that essence was not
// kept (the call then says oldUnavailable).
func updateOld(in Input, plan *Plan) (map[string]any, []callbacks.DiffOp) {
	old, _ := in.State.HandledEssence()
	if old == nil {
		return nil, nil
	}
	return old, essence.Diff(old, plan.Essence)
}

func decideRound(in Input, round *state.Round, behind []*state.Seen, plan *Plan) {
	ev := spec.Event(round.Event)
	var handledOld map[string]any
	var handledDiff []callbacks.DiffOp
	if ev == spec.EventUpdate {
		handledOld, handledDiff = updateOld(in, plan)
	}
	for _, cb := range in.Operator.CallbacksFor(ev) {
		old, diff := handledOld, handledDiff
		if ev == spec.EventUpdate {
			seen := state.SeenBy(behind, cb.ID)
			if seen == nil && in.State.Handled == plan.EssenceDigest || seen != nil && seen.Digest == plan.EssenceDigest {
				continue // it acted on this essence already
			}
			if seen != nil {
				old, diff = seenOld(seen, plan)
			}
		}
		if !matches(cb, in.Object, ev, old, plan.Essence) {
			continue
		}
		failed := FailedPermanently(in.State.ProgressFor(cb.ID, string(ev)), plan.EssenceDigest)
		if failed && ev == spec.EventUpdate {
			// Failed for good at this essence in an earlier round (one a
			// restart took up afresh): nothing more is owed until it
			// changes, and the round does not wait for it.
			continue
		}
		plan.RoundCallbacks = append(plan.RoundCallbacks, cb.ID)
		if round.IsDone(cb.ID) {
			continue
		}
		switch {
		case failed:
			// Only a create callback gets here (update and resume rounds
			// count a permanent failure as done): the round stays open and
			// calls it again once the essence changed (docs/contract.md).
			continue
		case heldBack(in, cb.ID, ev, plan):
			continue
		}
		plan.Work = append(plan.Work, Work{Callback: cb, Event: ev, Old: old, Diff: diff, OldUnavailable: ev == spec.EventUpdate && old == nil})
	}
}

// seenOld is what an update call carries to a callback that last acted on
// seen: that essence and the diff from it to the essence now; nil, nil
// when it was not kept.
func seenOld(seen *state.Seen, plan *Plan) (map[string]any, []callbacks.DiffOp) {
	old, _ := seen.Old()
	if old == nil {
		return nil, nil
	}
	return old, essence.Diff(old, plan.Essence)
}

func decideDelete(in Input, plan *Plan) {
	if in.Object.GetAnnotations()[ReleaseAnnotation] == "true" {
		plan.ReleaseFinalizer = true
		return
	}
	round := in.State.Round
	if round == nil || round.Event != string(spec.EventDelete) {
		round = &state.Round{Event: string(spec.EventDelete)}
		plan.StartRound = round
	}
	pending := false
	for _, cb := range in.Operator.CallbacksFor(spec.EventDelete) {
		if !matchesObject(cb, in.Object) {
			continue
		}
		plan.RoundCallbacks = append(plan.RoundCallbacks, cb.ID)
		if round.IsDone(cb.ID) {
			continue
		}
		pending = true
		switch {
		case FailedPermanently(in.State.ProgressFor(cb.ID, string(spec.EventDelete)), plan.EssenceDigest):
			// Permanently failed: the finalizer stays until the essence
			// changes or the user sets the release annotation.
		case heldBack(in, cb.ID, spec.EventDelete, plan):
		case dueRequeue(in, RequeueKey{cb.ID, spec.EventDelete}, plan):
			plan.Work = append(plan.Work, Work{Callback: cb, Event: spec.EventDelete})
		}
	}
	if !pending {
		plan.ReleaseFinalizer = true
	}
}

// dueRequeue reports whether a call is due as far as its requeueAfter goes:
// none answered, or it is due.
func dueRequeue(in Input, key RequeueKey, plan *Plan) bool {
	at, ok := in.Memory.Requeue[key]
	if !ok || !at.After(in.Now) {
		return true
	}
	plan.wakeAt(at)
	return false
}

func decideRequeues(in Input, behind []*state.Seen, plan *Plan) {
	for _, cb := range in.Operator.Spec.Callbacks {
		// Sync, timers and delete reschedule themselves (decideSync,
		// decideTimers, decideDelete).
		for _, ev := range []spec.Event{spec.EventCreate, spec.EventUpdate, spec.EventResume} {
			decideRequeue(in, behind, cb, ev, plan)
		}
	}
}

// decideRequeue plans callback cb's call for ev that a requeueAfter asked
// for, once due. behind is the state's Behind as the plan leaves it.
func decideRequeue(in Input, behind []*state.Seen, cb spec.Callback, ev spec.Event, plan *Plan) {
	at, ok := in.Memory.Requeue[RequeueKey{cb.ID, ev}]
	switch {
	case !ok:
		return
	case !matchesObject(cb, in.Object):
		// when.labels and when.annotations filter every call: the
		// requeue waits, as a sync's does, until they match again.
		return
	case FailedPermanently(in.State.ProgressFor(cb.ID, string(ev)), plan.EssenceDigest) || heldBack(in, cb.ID, ev, plan):
		// The entry stays until the requeued call succeeds: a failed one is
		// retried, after its backoff, like any failure.
		return
	case at.After(in.Now):
		plan.wakeAt(at)
		return
	case planned(plan, cb.ID):
		return // one call of a callback per pass; this one comes next pass
	}
	w := Work{Callback: cb, Event: ev}
	if ev == spec.EventUpdate {
		// An update call, as its round's: against the essence it acted on
		// when it is owed a change taken back, else the last handled
		// essence, which is the one it was called for once the round
		// ended (an empty diff then).
		if seen := state.SeenBy(behind, cb.ID); seen != nil {
			w.Old, w.Diff = seenOld(seen, plan)
		} else {
			w.Old, w.Diff = updateOld(in, plan)
		}
		w.OldUnavailable = w.Old == nil
	}
	plan.Work = append(plan.Work, w)
}

func decideSync(in Input, plan *Plan) {
	resync := resyncOf(in.Operator.Spec.ResyncPeriod.Or(10*time.Minute), in.Object.GetUID())
	changed := in.SyncDigest != in.Memory.SyncDigest
	plan.FullSync = changed || !in.Now.Before(in.Memory.SyncedAt.Add(resync))
	for _, cb := range in.Operator.CallbacksFor(spec.EventSync) {
		if !matchesObject(cb, in.Object) {
			continue
		}
		plan.SyncCallbacks = append(plan.SyncCallbacks, cb.ID)
		p := in.State.ProgressFor(cb.ID, string(spec.EventSync))
		if FailedPermanently(p, plan.EssenceDigest) {
			continue
		}
		if heldBack(in, cb.ID, spec.EventSync, plan) {
			if plan.FullSync && p == nil {
				// Held back by its other event's backoff: the others'
				// calls record the change (or resync) as synced, so it is
				// owed, and called alone once the backoff ends. Its own
				// failure's record calls it then already.
				oweSync(in, cb.ID)
			}
			continue
		}
		at, requeued := in.Memory.Requeue[RequeueKey{cb.ID, spec.EventSync}]
		// A record of the sync's own makes it due: its retry.
		due := plan.FullSync || p != nil || (requeued && !at.After(in.Now))
		if !due {
			plan.wakeAt(in.Memory.SyncedAt.Add(resync))
			if requeued {
				plan.wakeAt(at)
			}
			continue
		}
		plan.Work = append(plan.Work, Work{Callback: cb, Event: spec.EventSync})
	}
}

// oweSync makes sync callback id due now, as a requeued call is (its
// success ends it), unless a requeue of its own is due already.
func oweSync(in Input, id string) {
	key := RequeueKey{id, spec.EventSync}
	if at, ok := in.Memory.Requeue[key]; ok && !at.After(in.Now) {
		return
	}
	if in.Memory.Requeue == nil {
		in.Memory.Requeue = map[RequeueKey]time.Time{}
	}
	in.Memory.Requeue[key] = in.Now
}

// resyncOf is an object's resync period: period, plus up to a tenth of it
// by the object's uid, so that objects synced together (every one at a
// gateway's start) spread out over the periods after, rather than all
// calling their handlers again in the same moment. The same object keeps
// the same period.
func resyncOf(period time.Duration, uid types.UID) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(uid))
	return period + time.Duration(float64(period/10)*float64(h.Sum32())/(1<<32))
}

func decideTimers(in Input, plan *Plan) {
	mem := in.Memory
	for _, cb := range in.Operator.CallbacksFor(spec.EventTimer) {
		if !matchesObject(cb, in.Object) {
			continue
		}
		if mem.TimerNext == nil {
			mem.TimerNext = map[string]time.Time{}
		}
		next, ok := mem.TimerNext[cb.ID]
		if !ok {
			next = in.Now.Add(cb.InitialDelay.Or(0))
			mem.TimerNext[cb.ID] = next
		}
		// A permanent failure (or maxAttempts spent) gives up one tick
		// only, as in Kopf: the engine set the next at its interval
		// (recordFailure), and the timer fires on while the object
		// exists, its record saying it failed until a tick succeeds.
		if until := BackoffUntil(in.State, cb.ID, spec.EventTimer, plan.EssenceDigest, in.Now); until.After(next) {
			next = until
		}
		if idle := cb.Idle.Or(0); idle > 0 && mem.ChangedAt.Add(idle).After(next) {
			next = mem.ChangedAt.Add(idle)
		}
		if next.After(in.Now) {
			plan.wakeAt(next)
			continue
		}
		plan.Work = append(plan.Work, Work{Callback: cb, Event: spec.EventTimer})
	}
}

// heldBack reports whether callback id's call for ev waits out a backoff,
// and wakes the plan when it ends (see BackoffUntil).
func heldBack(in Input, id string, ev spec.Event, plan *Plan) bool {
	until := BackoffUntil(in.State, id, ev, plan.EssenceDigest, in.Now)
	plan.wakeAt(until)
	return !until.IsZero()
}

// BackoffUntil is when the backoff that holds callback id's call for ev
// back ends: the latest next retry among the callback's records that hold
// it (its own and, but for delete, its other events': state.Progress.Holds)
// and still wait at essenceDigest; zero when none does.
func BackoffUntil(st *state.State, id string, ev spec.Event, essenceDigest string, now time.Time) time.Time {
	var until time.Time
	for _, p := range st.Progress[id].Records() {
		if p.Holds(string(ev)) && backingOff(p, essenceDigest, now) && p.Next.After(until) {
			until = p.Next
		}
	}
	return until
}

// backingOff reports whether a record waits for its next retry. A change
// of the essence since the failure ends the wait: the user may just have
// fixed what failed, and should not wait out a long backoff to see it.
func backingOff(p *state.Progress, essenceDigest string, now time.Time) bool {
	return p != nil && !p.Failed && p.Digest == essenceDigest && p.Next.After(now)
}

// FailedPermanently reports whether a callback failed permanently at this
// essence: it is not called again until the essence changes.
func FailedPermanently(p *state.Progress, essenceDigest string) bool {
	return p != nil && p.Failed && p.Digest == essenceDigest
}

// Retrying reports whether p continues the retries of the current essence
// (same attempt count and delivery) rather than starting afresh.
func Retrying(p *state.Progress, essenceDigest string) bool {
	return p != nil && !p.Failed && p.Digest == essenceDigest
}

func planned(plan *Plan, id string) bool {
	for _, w := range plan.Work {
		if w.Callback.ID == id {
			return true
		}
	}
	return false
}

// OpenRound is the state's open round as a pass now takes it up, for a
// view of what it waits for: the round (an update round whose essence
// changed since it began starts over, its done callbacks owed the essence
// now; nil when the pass drops it and begins none), the callbacks it calls,
// done or not (Plan.RoundCallbacks), and Behind as the pass leaves it.
// Nothing when no round is open and no callback is owed the essence now
// (Behind: a create round ended with some acting on another one, whose
// update round the next pass starts). in.Memory may be nil: a gateway that
// has seen the object (no resume round comes first); it is not changed.
func OpenRound(in Input) (*state.Round, []string, []*state.Seen) {
	if in.State.Round == nil && len(in.State.Behind) == 0 {
		return nil, nil, nil
	}
	mem := Memory{Seen: true}
	if in.Memory != nil {
		mem = *in.Memory
		mem.TimerNext, mem.Requeue = maps.Clone(mem.TimerNext), maps.Clone(mem.Requeue)
	}
	in.Memory = &mem
	plan := Decide(in)
	round, behind := in.State.Round, in.State.Behind
	if plan.DropRound {
		round, behind = nil, plan.Behind
	}
	if plan.StartRound != nil {
		round = plan.StartRound
	}
	if round == nil {
		return nil, nil, behind
	}
	return round, plan.RoundCallbacks, behind
}
