package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// objectMemory is what this process remembers of one object.
type objectMemory struct {
	decide.Memory
	uid types.UID
	// replaced: a write found another object of the name (this one was
	// deleted, the name used again); nothing more is done for this uid.
	replaced bool
	// writtenRV is the resourceVersion our last write produced; an informer
	// copy older than it is stale, and its watch event is still to come.
	writtenRV uint64
	// applied is what the gateway last applied per child: an unchanged
	// child is not applied again.
	applied appliedChildren
	// unwritten is the state a pass failed to write (the API server down
	// or refusing), and unwrittenBase the annotation it would have
	// replaced. While the annotation is still that base, the next pass
	// continues from the unwritten state, so a retry stays the same
	// delivery (uid, attempt, backoff) and finished callbacks are not
	// called again.
	unwritten, unwrittenBase string
	// childrenBehindSince: unix nanoseconds since a pass first found a
	// child cached older than its apply (childCacheBehind); 0 while none is.
	childrenBehindSince int64
	// released: this process removed the finalizer of the deleting
	// object (guarded by the Controller's mu).
	released bool
	// orphan: an informer event showed the object deleting with the
	// orphan finalizer (guarded by the Controller's mu); see orphaning.
	orphan bool
	// reconciled is the status and lastTransitionTime of the Reconciled
	// condition the last status write left on the object (status.conditions
	// only): removed by another writer, it comes back with that time.
	reconciled struct{ status, since string }
}

// memoryOf returns what this process remembers of the object with uid,
// queued under key. Memory belongs to the object, not its name: when key
// now names another object (deleted and re-created), the old object's
// timers, requeues, sync digest, seen and writtenRV are dropped.
func (c *Controller) memoryOf(key string, uid types.UID) *objectMemory {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.memory[key]
	if !ok || m.uid != uid {
		m = &objectMemory{uid: uid}
		c.memory[key] = m
	}
	return m
}

// releaseMemory hands over what the controller remembers of its objects,
// once Run has returned: a controller built again for the same operator
// within the process (a kind's CRD created again with the other scope)
// goes on from it.
func (c *Controller) releaseMemory() map[string]*objectMemory {
	c.mu.Lock()
	defer c.mu.Unlock()
	memory := c.memory
	c.memory = map[string]*objectMemory{}
	return memory
}

// adoptMemory takes over memory (nil: nothing) before Run. What it says of
// the children applied is dropped: they were applied under the old scope
// and the new informers know nothing of them, so each is applied again
// (unchanged, a no-op for the API server) rather than waited for.
func (c *Controller) adoptMemory(memory map[string]*objectMemory) {
	if memory == nil {
		return
	}
	for _, m := range memory {
		m.applied, m.childrenBehindSince = nil, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.memory = memory
}

func (c *Controller) setReleased(m *objectMemory, released bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m.released = released
}

func (c *Controller) forget(key string) {
	c.stalled.drop(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.memory, key)
	c.problems.clear(relatedProblemKey(key))
}

func (c *Controller) processNextWorkItem(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)

	began := c.stalled.epoch()
	wake, err := c.reconcileSafely(ctx, key)
	if err != nil {
		if ctx.Err() != nil {
			return true // shutting down: the next gateway picks the key up
		}
		c.log.Error("reconcile failed; retrying", "object", key, "error", err)
		c.stalled.failed(key, began, err, c.queue)
		return true
	}
	c.stalled.drop(key)
	c.queue.Forget(key)
	if wake > 0 {
		c.queue.AddAfter(key, wake)
	}
	return true
}

// reconcileSafely turns a panic into an error so one bad object cannot
// stop a worker. The pass's deadline is its passBudget.
func (c *Controller) reconcileSafely(ctx context.Context, key string) (wake time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic reconciling %s: %v\n%s", key, r, debug.Stack())
		}
	}()
	return c.reconcileKey(ctx, key)
}

// pass is one reconcile of one object: the mutable state of the loop.
type pass struct {
	key      string
	obj      *unstructured.Unstructured
	st       *state.State
	stateRaw string
	mem      *objectMemory
	plan     decide.Plan
	children children
	related  map[string]map[string]*unstructured.Unstructured
	// relatedErr says which related selectors cannot be rendered for this
	// object: its sync callbacks wait, the other callbacks go on.
	relatedErr error
	now        time.Time
	// status holds what handlers answered, for an operator that owns
	// conditions: see flushStatus.
	status statusBuffer
	// gone: the object no longer exists (vanished.go); nothing is written to it.
	gone bool
	// replaced: a write found another object of the name (the pass's was
	// deleted and the name used again): the pass ends, the next reads it.
	replaced bool
	// plainStatus: statuses are written as they come, without the
	// gateway's conditions (see keepsConditions).
	plainStatus bool
	// lastWork: the work item running is the pass's last (written.go).
	lastWork bool
	// called: a callback was called in the pass, which may have written.
	called bool
	// seenDigest is the sync digest of what the pass read, as handlers see
	// it; foreign: a write answered a change none of them saw (foreign.go).
	seenDigest string
	foreign    bool
	// sync: what the pass's sync callbacks answered of the children, which
	// only all of them together prune by (syncAnswers).
	sync syncAnswers
}

func (c *Controller) reconcile(ctx context.Context, key string) (time.Duration, error) {
	cached, ok := c.parent.get(key)
	if !ok {
		c.forget(key)
		if c.takeGone(key) {
			return 0, nil
		}
		return 0, c.releaseIfUnwatched(ctx, key)
	}
	refused := c.refusesConditions()
	if refused && cached.GetDeletionTimestamp() == nil {
		return 0, nil // Health says why; what lifts it requeues every object
	}
	mem := c.memoryOf(key, cached.GetUID())
	if mem.replaced {
		return 0, nil // deleted, its name used again: the cache has yet to catch up
	}
	if rv, err := strconv.ParseUint(cached.GetResourceVersion(), 10, 64); err == nil && rv < mem.writtenRV {
		return 0, nil // stale cache: the event of our own write re-queues the key
	}
	// The pass reads the informer's object itself, uncopied: nothing
	// changes it in place (a held status is merged into a copy, see
	// deferStatus), and every write replaces it by what the API server
	// returned (adopt). A copy per pass was most of what a pass allocated
	// besides its writes.
	p := &pass{key: key, obj: cached, mem: mem, now: c.Clock(), plainStatus: refused}
	p.stateRaw = annotation(p.obj, c.stateAnnotation())
	uid := string(p.obj.GetUID())
	raw := p.stateRaw
	if mem.unwritten != "" && mem.unwrittenBase == p.stateRaw {
		raw = mem.unwritten
	}
	st, foreign, err := state.DecodeFor(raw, uid)
	switch {
	case err != nil:
		c.warn(p.obj, "InvalidState", fmt.Sprintf("annotation %s is unreadable (%v); starting from a clean state", c.stateAnnotation(), err))
		st = &state.State{UID: uid}
	case foreign:
		c.event(p.obj, "Normal", "StateOfAnotherObject", fmt.Sprintf("annotation %s was written for another object (copied or restored with the manifest); handling this object as new", c.stateAnnotation()))
	}
	p.st = st
	forgetRemovedCallbacks(p.st, c.op)
	if v := annotation(p.obj, decide.ReconcileRequestAnnotation); v != "" && !st.RequestHandled(v) {
		c.honourRequest(p, v)
	}
	if c.needsObserved() && mem.waitForChildren(c.childCacheBehind(cached, mem), c.Clock()) {
		return childCacheWait, nil // the event of our own apply re-queues the key
	}
	if c.needsObserved() {
		p.children = c.ownedChildren(p.obj)
		p.related, p.relatedErr = c.relatedObjects(p.obj)
		c.noteRelatedError(p.obj, key, p.relatedErr)
	}
	var digest string
	if c.op.HasEvent(spec.EventSync) {
		// Only sync reads it, and it marshals every observed object.
		digest = syncDigest(p.obj, p.children, p.related)
		p.seenDigest = digest
	}
	p.plan = decide.Decide(decide.Input{
		Operator: c.op, Object: p.obj, State: p.st, Memory: &mem.Memory,
		SyncDigest: digest, HoldsFinalizer: c.holdsFinalizer(p.obj), ChildrenByLabel: c.childrenByLabel(), Now: p.now,
	})
	deleting := p.obj.GetDeletionTimestamp() != nil
	if deleting && !p.st.Orphan && c.childrenByLabel() && c.orphaning(p) {
		p.st.Orphan = true // for a restarted gateway: see orphaning
		// Recorded before any delete callback or child settling: a gateway
		// killed during them, the garbage collector removing the orphan
		// finalizer meanwhile, would leave its successor nothing telling it
		// to keep the children.
		if err := c.writeState(ctx, p); errors.Is(err, apply.ErrReplaced) {
			return c.passOverReplaced(p), nil
		} else if errors.Is(err, apply.ErrAnnotationMoved) {
			return 0, nil // the other write's watch event brings the key back
		} else if err != nil {
			return 0, fmt.Errorf("recording the orphaning deletion: %w", err)
		}
	}
	budget := &passBudget{left: c.ReconcileTimeout}

	if p.plan.AddFinalizer || p.plan.ReleaseFinalizer && !deleting {
		err := budget.spend(ctx, func(ctx context.Context) error { return c.writeFinalizer(ctx, p, p.plan.AddFinalizer) })
		if errors.Is(err, errGoneBeforeFinalizer) {
			// Deleted before the gateway held its finalizer: no delete
			// callback could follow, so no create may start either (the
			// handler would make what nothing ever cleans up).
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
	}
	takeRound(c.op, p)
	if !mem.Seen {
		// A call this process does not owe (a requeued one a shutdown cut
		// off: requeues live in memory) left a record that only a round's
		// end or the callback's success would end: without them it would
		// count the object failing until the spec changes.
		endUnowedRecords(c.op, p)
	}
	for i, w := range p.plan.Work {
		if ctx.Err() != nil || budget.exhausted() || p.replaced {
			break // what is left stays due: nextWake sees to it
		}
		p.lastWork = i == len(p.plan.Work)-1
		c.runWork(ctx, p, budget, w)
	}
	if p.replaced {
		return c.passOverReplaced(p), nil
	}
	ctx, cancel := recordContext(ctx)
	defer cancel()
	saved := *p.st // before the round ends: see failHeld
	round := p.st.Round
	roundDone, err := c.finishRound(p, deleting)
	if err != nil {
		return 0, err
	}
	if c.keepsConditions(p) {
		// An object let go of now needs no Reconciled: it is going.
		releasing := deleting && (p.plan.ReleaseFinalizer || roundDone && c.holdsFinalizer(p.obj))
		ferr := c.flushStatus(ctx, p, releasing)
		if errors.Is(ferr, apply.ErrReplaced) {
			return c.passOverReplaced(p), nil
		}
		if errors.Is(ferr, apply.ErrAnnotationMoved) {
			// As for the state (writeState): the other writer's status and
			// state are the newer; the pass records nothing.
			c.log.Info("state annotation written by another writer during the pass; its status is not overwritten", "object", key)
			mem.unwritten, mem.unwrittenBase = "", ""
			return 0, nil
		}
		switch {
		case ferr == nil:
			c.countHeld(p)
		case deleting:
			// The object is going: its status with it. Holding the finalizer
			// for a status the server keeps refusing would leave it stuck.
			c.log.Warn("status not written; the deleting object is let go of regardless", "object", key, "error", ferr)
			c.countHeld(p)
		case len(p.status.calls) == 0:
			return 0, c.keepProgress(ctx, p, ferr)
		default:
			// The callbacks whose statuses were held take the failure, as a
			// failed status write does without conditions, and the pass
			// goes on: their round is not done after all.
			*p.st = saved
			c.failHeld(p, ferr)
			if roundDone, err = c.finishRound(p, deleting); err != nil {
				return 0, err
			}
		}
	}
	if deleting && (p.plan.ReleaseFinalizer || roundDone && c.holdsFinalizer(p.obj)) {
		if err := c.settleChildrenByLabel(ctx, p); err != nil {
			return 0, c.keepProgress(ctx, p, err)
		}
		// Before the write: the watch may report the deletion it
		// completes before the write returns. See noteGone.
		c.setReleased(mem, true)
		if err := c.writeFinalizer(ctx, p, false); err != nil {
			c.setReleased(mem, false)
			c.takeGone(key) // a mark the failed write earned is void
			return 0, c.keepProgress(ctx, p, err)
		}
		return 0, nil // the object is going away; no state to keep
	}
	if roundDone && round != nil && round.Event == string(spec.EventResume) {
		// Resume is owed once per process, not per state written: while the
		// state cannot be written (or another writer's replaced it) the next
		// pass would otherwise start a resume round again and call the
		// resume callbacks that succeeded.
		mem.Seen = true
	}
	if err := c.writeState(ctx, p); errors.Is(err, apply.ErrReplaced) {
		return c.passOverReplaced(p), nil
	} else if errors.Is(err, apply.ErrAnnotationMoved) {
		return 0, nil // the other write's watch event brings the key back
	} else if err != nil {
		return 0, err
	}
	mem.Seen = true
	return c.nextWake(p), nil
}

// stillTheObject is ErrReplaced if the informer already holds another
// object of the pass's name: the pass's was deleted and the name used
// again while a handler ran. Checked before an answer is written, it
// spares the writes that the writes' own pins (uid, resourceVersion)
// would refuse; those cover what the cache has yet to see.
func (c *Controller) stillTheObject(p *pass) error {
	if cur, ok := c.parent.get(p.key); ok && cur.GetUID() != p.obj.GetUID() {
		return fmt.Errorf("%s (uid %s): %w", p.key, p.obj.GetUID(), apply.ErrReplaced)
	}
	return nil
}

// passOverReplaced ends a pass whose object was deleted, and another of
// its name created, while it ran: nothing more is written to it, and its
// memory says so, so that passes over a cache that still holds it do
// nothing (they would call its handlers again). The informer's events of
// the deletion and of the new object bring the key back.
func (c *Controller) passOverReplaced(p *pass) time.Duration {
	c.log.Debug("object deleted and created again during the pass; the next pass reads the new one", "object", p.key)
	p.mem.replaced = true
	return 0
}

// takeRound makes the plan's round the state's: the open one dropped, a
// new one begun.
func takeRound(op *spec.WebhookOperator, p *pass) {
	if p.plan.DropRound {
		p.st.Round, p.st.Behind = nil, p.plan.Behind
		endUnowedRecords(op, p)
	}
	if r := p.plan.StartRound; r != nil {
		p.st.Round = r
		for _, id := range p.plan.RoundCallbacks {
			// A new round is a fresh start for its event's failed calls;
			// the callback's other events' permanent failures stand until
			// the essence changes (a resume round starts at the same one).
			p.st.ClearFailed(id, r.Event)
		}
	}
}

// finishRound records a round whose callbacks are all done: a create or
// update round's essence as handled.
func (c *Controller) finishRound(p *pass, deleting bool) (bool, error) {
	if p.st.Round == nil {
		return false, nil
	}
	if !allDone(p.st.Round, p.plan.RoundCallbacks) {
		return false, c.keepRoundEssence(p)
	}
	switch spec.Event(p.st.Round.Event) {
	case spec.EventCreate:
		if err := c.endCreateRound(p); err != nil {
			return false, err
		}
		at := p.now.UTC().Truncate(time.Second)
		p.st.HandledAt = &at
	case spec.EventUpdate:
		if err := p.st.SetHandled(p.plan.Essence, c.EssenceCap); err != nil {
			return false, err
		}
		at := p.now.UTC().Truncate(time.Second)
		p.st.HandledAt = &at
		p.st.Behind = nil // every update callback acted on it, or needs not
	}
	// A deleting object keeps its finished round until the finalizer is
	// gone: should deleting its children or releasing fail, the next pass
	// finds the delete callbacks done instead of calling them anew.
	if !deleting {
		p.st.Round = nil
	}
	endUnowedRecords(c.op, p)
	return true, nil
}

// endUnowedRecords ends, once a round ended or was dropped, and on a
// process's first pass of the object, the retry records of calls no
// longer owed, as a success does (endRecord, unowed): a failure of a
// change taken back, say, would otherwise count the object failing for
// good. A permanent failure at the essence now stays while op still makes
// the call, and so does an update's failure while an update round is
// still to come (a resume round ended that had come first), with its
// backoff and count.
func endUnowedRecords(op *spec.WebhookOperator, p *pass) {
	updateDue := func(id string) bool {
		return p.st.Handled != p.plan.EssenceDigest || state.SeenBy(p.st.Behind, id) != nil
	}
	for id := range p.st.Progress {
		p.st.ClearIf(id, func(pr *state.Progress) bool {
			return unowed(op, p, id, pr, pr.Event == string(spec.EventUpdate) && updateDue(id))
		})
	}
}

// endCreateRound records the essence a create round ended at as handled,
// unless its callbacks acted on older ones (state.NoteActed, in Behind:
// the round was left open, the user changed the spec meanwhile). Then, as
// when an update round is dropped, each that handles update is owed the
// essence now with the one it acted on as old (nothing when that is the
// essence now), and the handled essence is the first one a callback
// acted on: the update callbacks that acted on none hear of the change
// from there. With no update callback, no one is owed anything.
func (c *Controller) endCreateRound(p *pass) error {
	st := p.st
	if len(st.Behind) > 0 && c.op.HasEvent(spec.EventUpdate) {
		if err := st.NoteActed(st.Round, p.plan.EssenceDigest, p.plan.Essence, c.EssenceCap); err != nil {
			return err
		}
	}
	if len(st.Behind) == 0 || !c.op.HasEvent(spec.EventUpdate) {
		st.Behind = nil
		return st.SetHandled(p.plan.Essence, c.EssenceCap)
	}
	st.Handled, st.Essence = st.Behind[0].Digest, st.Behind[0].Essence
	st.KeepBehind(func(id string) bool {
		return slices.ContainsFunc(c.op.Spec.Callbacks, func(cb spec.Callback) bool { return cb.ID == id && cb.Handles(spec.EventUpdate) })
	})
	st.Behind = slices.DeleteFunc(st.Behind, func(g *state.Seen) bool { return g.Digest == st.Handled })
	if len(st.Behind) == 0 {
		st.Behind = nil
	}
	return nil
}

// keepRoundEssence keeps the essence of an update round left open with
// callbacks done: should a change drop the round, their next call carries
// it as old (state.Round.Essence). Only then: most rounds end in one pass.
// A create round, which a change does not drop, keeps per essence the
// callbacks that acted on it (state.NoteActed), for endCreateRound. Also
// while the operator has no update callback: one added before the round
// ends (an operator edit, a restart with its next version) is owed the
// change since.
func (c *Controller) keepRoundEssence(p *pass) error {
	r := p.st.Round
	if r.Event == string(spec.EventCreate) {
		r.Digest, r.Essence = "", nil // a gateway that kept the first essence here: see NoteActed
		return p.st.NoteActed(r, p.plan.EssenceDigest, p.plan.Essence, c.EssenceCap)
	}
	if r.Event != string(spec.EventUpdate) || len(r.Done) == 0 || r.Essence != nil || r.Digest != p.plan.EssenceDigest {
		return nil
	}
	return p.st.KeepRoundEssence(p.plan.Essence, c.EssenceCap)
}

// keepProgress records the pass's state before it fails with err, so that
// what succeeded (the delete callbacks) is not called again.
func (c *Controller) keepProgress(ctx context.Context, p *pass, err error) error {
	if werr := c.writeState(ctx, p); werr != nil {
		c.log.Warn("could not record the state of a failed pass", "object", p.key, "error", werr)
	}
	return err
}

// forgetRemovedCallbacks drops what the state keeps of callbacks the
// operator no longer has (removed by a live edit or between runs): their
// retry progress would count as a failing callback forever, since only a
// success clears it, and a callback re-added under the same id starts
// afresh rather than being taken as done in the open round.
func forgetRemovedCallbacks(st *state.State, op *spec.WebhookOperator) {
	has := func(id string) bool {
		return slices.ContainsFunc(op.Spec.Callbacks, func(cb spec.Callback) bool { return cb.ID == id })
	}
	for id := range st.Progress {
		if !has(id) {
			st.Clear(id)
		}
	}
	st.KeepBehind(has)
	if st.Round != nil {
		st.Round.Done = slices.DeleteFunc(st.Round.Done, func(id string) bool { return !has(id) })
	}
}

func allDone(r *state.Round, ids []string) bool {
	for _, id := range ids {
		if !r.IsDone(id) {
			return false
		}
	}
	return true
}

// nextWake asks decide again, on the state after this pass, when the object
// next has something due.
func (c *Controller) nextWake(p *pass) time.Duration {
	if p.obj.GetDeletionTimestamp() != nil && !c.holdsFinalizer(p.obj) {
		return 0
	}
	// A deep copy: this look-ahead must not schedule timers or drop requeues.
	mem := p.mem.Memory
	mem.TimerNext, mem.Requeue = maps.Clone(mem.TimerNext), maps.Clone(mem.Requeue)
	// The recorded digest is the object's as this pass leaves it, the
	// pass's own writes taken in, unless a full pass was cut short before
	// every sync call ended: then nothing was recorded, and what the pass
	// saw is still due to the sync callbacks it did not reach.
	digest := p.mem.SyncDigest
	if p.plan.FullSync && !p.sync.endedAll(p.plan.Work) {
		digest = p.seenDigest
	}
	plan := decide.Decide(decide.Input{
		Operator: c.op, Object: p.obj, State: p.st, Memory: &mem,
		SyncDigest: digest, HoldsFinalizer: c.holdsFinalizer(p.obj), ChildrenByLabel: c.childrenByLabel(), Now: p.now,
	})
	if len(plan.Work) > 0 || plan.StartRound != nil {
		return time.Millisecond
	}
	if plan.Wake.IsZero() {
		return 0
	}
	if d := plan.Wake.Sub(c.Clock()); d > 0 {
		return d
	}
	return time.Millisecond
}

func (c *Controller) needsObserved() bool {
	return len(c.children) > 0 || len(c.related) > 0
}

func (c *Controller) stateAnnotation() string { return c.op.StateAnnotation() }
func (c *Controller) finalizer() string       { return c.op.Finalizer() }

func (c *Controller) holdsFinalizer(obj *unstructured.Unstructured) bool {
	for _, f := range obj.GetFinalizers() {
		if f == c.finalizer() {
			return true
		}
	}
	return false
}

func (c *Controller) writeFinalizer(ctx context.Context, p *pass, add bool) error {
	if !add && p.obj.GetDeletionTimestamp() != nil {
		// The object's last write: the pass ends after it.
		out, err := c.applier.RemoveFinalizerMeta(ctx, p.obj, c.finalizer())
		c.countApply("finalizer", err)
		if err != nil {
			return err
		}
		c.adoptMeta(p, out)
		return nil
	}
	var out *unstructured.Unstructured
	var err error
	if add {
		out, err = c.applier.AddFinalizer(ctx, p.obj, c.finalizer())
	} else {
		out, err = c.applier.RemoveFinalizer(ctx, p.obj, c.finalizer())
	}
	c.countApply("finalizer", err)
	if err != nil {
		return err
	}
	if out == nil {
		// Deleted, maybe with its name used again: the pass has no object.
		return errGoneBeforeFinalizer
	}
	c.adopt(p, out)
	return nil
}

// errGoneBeforeFinalizer: the object was deleted before the finalizer could
// be added or released (the apply layer takes a missing object, or another
// of its name, as nothing to hold).
var errGoneBeforeFinalizer = errors.New("object deleted before the finalizer was written")

// writeState writes the state annotation when it changed, within what the
// object's other annotations leave of the API server's limit.
func (c *Controller) writeState(ctx context.Context, p *pass) error {
	key := c.stateAnnotation()
	value, dropped, err := p.st.EncodeWithin(state.Room(p.obj.GetAnnotations(), key))
	if err != nil {
		return err
	}
	if dropped {
		c.log.Debug("object's annotations near their size limit: the handled essence is not kept", "object", p.key)
	}
	if value == p.stateRaw {
		// Back at the annotation's state: an unwritten one is outdated,
		// and continuing from it would repeat what this pass finished.
		p.mem.unwritten, p.mem.unwrittenBase = "", ""
		return nil
	}
	// Only over the state the pass began from: another writer's since
	// (a replica that took over while this one's pass ran) is newer than
	// what the pass knows. The pass's last write (written.go): its
	// metadata is all it reads after.
	// The pass began without the annotation if stateRaw is empty and the
	// object's metadata, as the pass's last write answered it, has none.
	var base *string
	if _, ok, _ := unstructured.NestedFieldNoCopy(p.obj.Object, "metadata", "annotations", key); ok || p.stateRaw != "" {
		base = &p.stateRaw
	}
	out, err := c.applier.SwapAnnotationMeta(ctx, p.obj, key, base, value)
	if err != nil && (apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err)) {
		// Refused, most likely for size: another writer (another operator's
		// state, the user) grew the annotations since our copy. Failing
		// would call the handlers again; the smallest state may still fit.
		if smallest, _, _ := p.st.EncodeWithin(0); len(smallest) < len(value) {
			c.log.Debug("state write refused; writing the smallest state", "object", p.key, "error", err)
			c.countApply("state", err)
			value = smallest
			out, err = c.applier.SwapAnnotationMeta(ctx, p.obj, key, base, value)
		}
	}
	c.countApply("state", err)
	if errors.Is(err, apply.ErrAnnotationMoved) {
		// What this pass did is recorded in neither: its calls are made
		// again where the other writer's state does not cover them (at
		// least once). The other write's watch event brings the key back.
		c.log.Info("state annotation written by another writer during the pass; the next pass goes on from it", "object", p.key)
		p.mem.unwritten, p.mem.unwrittenBase = "", ""
		return err
	}
	if err != nil {
		p.mem.unwritten, p.mem.unwrittenBase = value, p.stateRaw
		return err
	}
	c.adoptMeta(p, out)
	p.stateRaw = value
	p.mem.unwritten, p.mem.unwrittenBase = "", ""
	return nil
}

// adopt makes the object a write returned the pass's current object.
func (c *Controller) adopt(p *pass, out *unstructured.Unstructured) {
	if out == nil || out == p.obj {
		return // nothing new (a finalizer already as wanted); p.obj may be the cache's
	}
	// Like the informers' copies: handlers never see managedFields.
	unstructured.RemoveNestedField(out.Object, "metadata", "managedFields")
	p.obj = out
	noteWritten(p, out.GetResourceVersion())
}

func (c *Controller) countApply(action string, err error) {
	result := "success"
	if err != nil {
		result = failure.As(err).Class.String()
	}
	c.Metrics.ApplyResults.WithLabelValues(c.op.Name, action, result).Inc()
}

func (c *Controller) warn(obj *unstructured.Unstructured, reason, msg string) {
	c.event(obj, "Warning", reason, msg)
}

// event hands an Event to the recorder and counts it in
// opgate_events_total. Only the handing over is known: client-go's
// broadcaster writes it later, aggregated and rate-limited, and reports
// no result.
func (c *Controller) event(obj runtime.Object, typ, reason, msg string) {
	c.Recorder.Event(obj, typ, reason, msg)
	c.Metrics.Events.WithLabelValues(c.op.Name, typ).Inc()
}

// annotation reads one annotation without copying the object's
// annotations, as GetAnnotations does on every call.
func annotation(obj *unstructured.Unstructured, key string) string {
	v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "metadata", "annotations", key)
	s, _ := v.(string)
	return s
}

// keyOf is the queue key of an object.
func keyOf(obj *unstructured.Unstructured) string {
	k, _ := cache.MetaNamespaceKeyFunc(obj)
	return k
}
