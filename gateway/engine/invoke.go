package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/opgate/opgate/callbacks/essence"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// DefaultFinalizeRequeue is how soon a delete callback that answered
// finalized: false without requeueAfter is called again.
const DefaultFinalizeRequeue = 10 * time.Second

// runWork calls one callback and records its outcome in the pass. The
// wait for a maxInFlight slot is outside the pass's budget; the call and the
// applying of its answer are inside.
func (c *Controller) runWork(ctx context.Context, p *pass, b *passBudget, w decide.Work) {
	d := attemptOf(p, w)
	attempt := d.attempt
	if w.Event == spec.EventSync && p.relatedErr != nil {
		c.deferSync(p, w, d, p.relatedErr) // a sync is owed every related kind
		return
	}

	if w.Event == spec.EventSync && !p.plan.FullSync {
		p.sync.before = digestBeforeAlone(p)
	}
	p.called = true
	req := c.buildRequest(p, w, attempt, d.first)
	held := c.holdStatus(p, w, d)
	release, err := c.waitForSlot(ctx)
	if err != nil {
		if c.log.Enabled(ctx, slog.LevelDebug) {
			c.callLog(p, w, attempt).DebugContext(ctx, "stopped waiting for a callback slot; the call is left to the next pass", "error", err)
		}
		return
	}
	var resp *callbacks.Response
	err = b.spend(ctx, func(ctx context.Context) error {
		var err error
		resp, err = c.callInSlot(ctx, release, p, w, req)
		return c.takeAnswer(ctx, p, w, resp, err)
	})
	switch {
	case err == nil:
		if !held(resp, c.recordSuccess(p, w, resp)) {
			c.recordEvents(p.obj, resp)
			c.countSuccess(p, w)
		}
		if c.log.Enabled(ctx, slog.LevelDebug) {
			c.callLog(p, w, attempt).DebugContext(ctx, "callback succeeded")
		}
	case ctx.Err() != nil:
		c.recordInterrupted(p, w, d)
		c.callLog(p, w, attempt).InfoContext(ctx, "callback interrupted by shutdown; the next gateway calls it again", "error", err)
	case errors.Is(err, apply.ErrReplaced):
		// Not the handler's failure: its object is gone (reconcile.go).
		p.replaced = true
	default:
		c.recordFailure(p, w, d, err, c.callLog(p, w, attempt))
		if w.Event == spec.EventSync {
			recordSynced(p, w.Callback.ID)
		}
	}
}

// takeAnswer applies the answer of a call that ended with callErr. An
// answer reporting an error has its Events recorded with its status
// (docs/contract.md); an applied one's are recorded by runWork once all
// of it stands (a held status once written, countHeld), since an answer
// refused whole may announce what it would have done, and one whose
// status is refused is called again, Events and all.
func (c *Controller) takeAnswer(ctx context.Context, p *pass, w decide.Work, resp *callbacks.Response, callErr error) error {
	if callErr != nil {
		if resp != nil { // an answer reporting an error
			c.recordEvents(p.obj, resp)
			if resp.Status != nil {
				c.applyErrorStatus(ctx, p, w, resp.Status)
			}
		}
		return callErr
	}
	return c.applyResponse(ctx, p, w, resp)
}

// delivery is where a call stands in its delivery: the attempt it is (as
// the handler is told), when the delivery's first attempt was, and how
// many of the attempts before it a shutdown cut off.
type delivery struct {
	attempt     int
	first       time.Time
	interrupted int
}

// failures is how many attempts failed once this one has: what
// maxAttempts and the backoff count.
func (d delivery) failures() int { return max(d.attempt-d.interrupted, 0) }

// record writes the delivery into a retry record.
func (d delivery) record(pr *state.Progress) {
	pr.Attempts, pr.First, pr.Interrupted = d.attempt, d.first, d.interrupted
}

// reasonInterrupted is the reason of a retry record whose last attempt a
// shutdown of the gateway cut off.
const reasonInterrupted = "Interrupted"

// attemptOf is the delivery a call of w continues: the next attempt of its
// event's retry record while that retries at this essence, else a first
// attempt now.
func attemptOf(p *pass, w decide.Work) delivery {
	if pr := p.st.ProgressFor(w.Callback.ID, string(w.Event)); decide.Retrying(pr, p.plan.EssenceDigest) {
		interrupted := pr.Interrupted
		if interrupted == 0 && pr.Reason == reasonInterrupted {
			// Written by a gateway that did not count them (no "i"): its
			// last attempt at least was cut off, as the rolling update
			// that installed this one cut it.
			interrupted = 1
		}
		return delivery{attempt: pr.Attempts + 1, first: pr.First, interrupted: interrupted}
	}
	return delivery{attempt: 1, first: p.now}
}

// callLog is the logger of one call, with its attributes. Logger.With
// formats them at once, so it is built only for a record that is kept:
// building it for every call's Debug record, which the default level
// drops, took 1.6 % of the gateway's CPU (as call.Client does).
func (c *Controller) callLog(p *pass, w decide.Work, attempt int) *slog.Logger {
	return c.log.With("callback", w.Callback.ID, "event", w.Event, "object", p.key, "attempt", attempt)
}

// callInSlot calls the handler in the slot waitForSlot gave.
func (c *Controller) callInSlot(ctx context.Context, release func(), p *pass, w decide.Work, req *callbacks.Request) (*callbacks.Response, error) {
	defer release()
	start := c.Clock()
	var children call.Children
	if carriesObserved(w) {
		children = requestChildren(p.children)
	}
	resp, err := c.Caller.CallWithChildren(ctx, c.endpoints.get(w.Callback.ID), req, children)
	c.Metrics.CallbackDuration.WithLabelValues(c.op.Name, w.Callback.ID, string(w.Event)).Observe(c.Clock().Sub(start).Seconds())
	return resp, err
}

// stillOwed reports whether a call of callback id for event is still to
// come: op still makes it (decide.StillCalls: the callback handles the
// event, and a sync's or timer's when filter matches), and it is one of
// the open round not done yet, or a requeued one (create, update, resume);
// a sync, timer or delete comes again by itself. A failure record of an
// event no longer owed (the spec went back to what was handled; a requeue
// a restart forgot; an operator edit took the event from the callback)
// would count the object failing for good, since only a success of that
// event ends it.
func stillOwed(op *spec.WebhookOperator, p *pass, id, event string) bool {
	return decide.StillCalls(op, id, spec.Event(event), p.obj) && toCome(p, id, event)
}

// toCome is stillOwed for a call op is known to still make.
func toCome(p *pass, id, event string) bool {
	switch spec.Event(event) {
	case spec.EventCreate, spec.EventUpdate, spec.EventResume:
		if r := p.st.Round; r != nil && r.Event == event && !r.IsDone(id) {
			return true
		}
		_, ok := p.mem.Requeue[decide.RequeueKey{Callback: id, Event: spec.Event(event)}]
		return ok
	}
	return true
}

// unowed reports whether callback id's record pr ends: its call is not
// owed (stillOwed, or owed, what the caller knows besides). A permanent
// failure at the essence now stays while op still makes the call: the
// object is failing until its spec changes, whatever else succeeds (a new
// round ends it). One op no longer makes goes: nothing else would end it.
func unowed(op *spec.WebhookOperator, p *pass, id string, pr *state.Progress, owed bool) bool {
	switch {
	case !decide.StillCalls(op, id, spec.Event(pr.Event), p.obj):
		return true
	case owed || toCome(p, id, pr.Event): // StillCalls answered above
		return false
	}
	return !decide.FailedPermanently(pr, p.plan.EssenceDigest)
}

// endRecord ends callback id's retry records on a success of event: its
// record of event, and those of other events no longer owed (unowed).
// Another event's failure still owed stays, with its backoff and attempts.
func endRecord(op *spec.WebhookOperator, p *pass, id, event string) {
	p.st.ClearIf(id, func(pr *state.Progress) bool {
		return pr.For(event) || unowed(op, p, id, pr, false)
	})
}

// countSuccess counts a request whose answer is applied, its status
// included: a held status counts only once written (flushStatus), as a
// refused one makes the request a failure (failHeld), counted once.
func (c *Controller) countSuccess(p *pass, w decide.Work) {
	c.Metrics.CallbackRequests.WithLabelValues(c.op.Name, w.Callback.ID, string(w.Event), "success").Inc()
	if w.Event == spec.EventCreate || w.Event == spec.EventUpdate {
		c.Metrics.EventLatency.WithLabelValues(c.op.Name, string(w.Event)).Observe(c.Clock().Sub(p.mem.ChangedAt).Seconds())
	}
}

// recordSuccess records a callback that succeeded and its answer was
// applied: its retry state goes, a timer is scheduled, a round notes it.
// Its metrics are countSuccess's. It reports whether it made the callback
// done in the open round: only then does a refused held status undo that.
func (c *Controller) recordSuccess(p *pass, w decide.Work, resp *callbacks.Response) (roundDone bool) {
	id := w.Callback.ID
	if resp == nil {
		resp = &callbacks.Response{}
	}
	endRecord(c.op, p, id, string(w.Event))
	switch w.Event {
	case spec.EventTimer:
		// requeueAfter replaces the interval for this one time.
		next := timerInterval(w.Callback) // the operator's own: not capped
		if d, _ := resp.RequeueAfterDuration(); d > 0 {
			next = c.requeueDelay(w.Callback, d)
		}
		c.scheduleTick(p, id, next)
	case spec.EventDelete:
		if resp.Finalized != nil && !*resp.Finalized {
			return false // not done: called again after requeueAfter (set in applyResponse)
		}
	}
	switch r := p.st.Round; {
	case r == nil || r.Event != string(w.Event):
	case !r.IsDone(id):
		r.Done = append(r.Done, id)
		return true
	case w.Event == spec.EventCreate:
		// A requeued create call: the callback acted on the essence now,
		// not the one its round call did (state.NoteActed groups it anew).
		// Unless it is the one it acted on: taken out, its group would be
		// added back last, and the round end at another first essence.
		if g := state.SeenBy(p.st.Behind, id); g == nil || g.Digest != p.plan.EssenceDigest {
			p.st.KeepBehind(func(x string) bool { return x != id })
		}
	}
	return false
}

// timerInterval is the time between cb's ticks (a timer callback has an
// interval: the spec requires it; an hour stands in otherwise).
func timerInterval(cb spec.Callback) time.Duration { return cb.Interval.Or(time.Hour) }

// scheduleTick sets timer id's next tick d from now (decideTimers adds
// its idle wait).
func (c *Controller) scheduleTick(p *pass, id string, d time.Duration) {
	if p.mem.TimerNext == nil {
		p.mem.TimerNext = map[string]time.Time{}
	}
	p.mem.TimerNext[id] = c.Clock().Add(d)
}

func (c *Controller) buildRequest(p *pass, w decide.Work, attempt int, first time.Time) *callbacks.Request {
	req := &callbacks.Request{
		APIVersion: callbacks.APIVersion,
		Kind:       callbacks.RequestKind,
		UID:        deliveryID(c.op.Name, w.Callback.ID, string(p.obj.GetUID()), string(w.Event), first),
		Event:      callbacks.Event(w.Event),
		Operator:   c.op.Name,
		Callback:   w.Callback.ID,
		Attempt:    attempt,
		Object:     withoutOwnAnnotations(p.obj),
		Diff:       w.Diff,
		// An update without old says so, rather than look like one without changes.
		OldUnavailable: w.OldUnavailable,
	}
	if w.Old != nil {
		req.Old = essence.OldObject(p.obj, w.Old)
	}
	if carriesObserved(w) {
		req.Related = p.related // the children: see callInSlot
	}
	return req
}

// carriesObserved: sync and delete requests carry the observed children
// and related objects.
func carriesObserved(w decide.Work) bool {
	return w.Event == spec.EventSync || w.Event == spec.EventDelete
}

// deliveryID is stable across the retries of one delivery (it keys on the
// first attempt's time, which the state annotation keeps), so handlers can
// deduplicate with it.
func deliveryID(operator, callback, uid, event string, first time.Time) string {
	return essence.Digest([]string{operator, callback, uid, event, strconv.FormatInt(first.UnixNano(), 10)})
}

// withoutOwnAnnotations hides the gateway's bookkeeping from handlers. The
// result shares everything but the maps on the way to the annotations with
// obj, so it must not be modified; the request is only encoded, within the
// pass that owns obj. obj itself comes back when it has no such annotation.
func withoutOwnAnnotations(obj *unstructured.Unstructured) *unstructured.Unstructured {
	meta, _ := obj.Object["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	own := 0
	for k := range ann {
		if strings.HasPrefix(k, "opgate.dev/state.") {
			own++
		}
	}
	if own == 0 {
		return obj
	}
	kept := make(map[string]any, len(ann)-own)
	for k, v := range ann {
		if !strings.HasPrefix(k, "opgate.dev/state.") {
			kept[k] = v
		}
	}
	m := maps.Clone(meta)
	m["annotations"] = kept // {} when only ours were there, as before
	out := maps.Clone(obj.Object)
	out["metadata"] = m
	return &unstructured.Unstructured{Object: out}
}

// recordEvents records the Events of a handler's answer (none for nil).
func (c *Controller) recordEvents(obj *unstructured.Unstructured, resp *callbacks.Response) {
	if resp == nil {
		return
	}
	for _, e := range resp.Events {
		typ := e.Type
		if typ == "" {
			typ = callbacks.EventTypeNormal
		}
		c.HandlerRecorder.Event(obj, typ, e.Reason, e.Message)
		c.Metrics.Events.WithLabelValues(c.op.Name, typ).Inc()
	}
}

// recordInterrupted records a call that shutting down cut short, which is
// no failure of the handler: no Event, no backoff, and it counts towards
// neither maxAttempts nor the backoff of later failures (operations.md: a
// rolling update must not turn one real failure into a permanent one).
// The next gateway makes it again at once as the same delivery, its next
// attempt, since the handler may have seen it.
func (c *Controller) recordInterrupted(p *pass, w decide.Work, d delivery) {
	pr := p.st.ProgressOf(w.Callback.ID, string(w.Event))
	d.interrupted++
	d.record(pr)
	pr.Next = time.Time{}
	pr.Failed, pr.Digest, pr.Message, pr.Reason = false, p.plan.EssenceDigest, "interrupted by shutdown", reasonInterrupted
}

// deferSync puts off a sync whose related objects cannot be gathered: with
// backoff, like a temporary failure, but never permanent — maxAttempts is
// about the handler, and here the object or the selector must change, which
// may be a status change that never touches the essence — and without a
// second Warning (noteRelatedError reported the selector once).
func (c *Controller) deferSync(p *pass, w decide.Work, d delivery, err error) {
	pr := p.st.ProgressOf(w.Callback.ID, string(w.Event))
	d.record(pr)
	pr.Message, pr.Reason = truncate(err.Error(), 512), failure.As(err).Reason
	pr.Failed, pr.Digest, pr.Next = false, p.plan.EssenceDigest, c.Clock().Add(retryDelay(c.retryOf(w.Callback), d.failures(), 0))
	c.Metrics.Retries.WithLabelValues(c.op.Name, w.Callback.ID, failure.Temporary.String()).Inc()
}

// retryOf is the callback's retry policy: its own settings over the
// operator's.
func (c *Controller) retryOf(cb spec.Callback) spec.RetrySpec {
	var opRetry spec.RetrySpec
	if c.op.Spec.Retry != nil {
		opRetry = *c.op.Spec.Retry
	}
	return cb.EffectiveRetry(opRetry)
}

// retryDelay is the wait before the next attempt after failures failed
// ones: the handler's retryAfter when it gave one, else the backoff.
// maxDelay caps both, so a misbehaving handler cannot park an object for a
// year (requeueDelay caps requeueAfter alike).
func retryDelay(retry spec.RetrySpec, failures int, retryAfter time.Duration) time.Duration {
	delay := retryAfter
	if delay <= 0 {
		delay = decide.RetryDelay(retry, failures)
	}
	return decide.CapDelay(retry, delay)
}

// requeueDelay is when a handler's requeueAfter d calls cb again: d, capped
// by maxDelay as retryAfter is, so that no answer parks an object (or keeps
// it Terminating) longer than the operator allows.
func (c *Controller) requeueDelay(cb spec.Callback, d time.Duration) time.Duration {
	return decide.CapDelay(c.retryOf(cb), d)
}

// recordFailure classifies a failed callback: schedule a retry with backoff
// or mark it failed permanently until the essence changes (a timer: until
// a later tick succeeds; its next is at its interval). maxAttempts and
// the backoff count the delivery's failures, not its attempts a shutdown
// cut off.
func (c *Controller) recordFailure(p *pass, w decide.Work, d delivery, err error, log interface {
	Warn(string, ...any)
}) {
	id := w.Callback.ID
	f := failure.As(err)
	retry := c.retryOf(w.Callback)
	maxAttempts := 0
	if retry.MaxAttempts != nil {
		maxAttempts = *retry.MaxAttempts
	}
	pr := p.st.ProgressOf(id, string(w.Event))
	d.record(pr)
	pr.Message, pr.Reason = truncate(err.Error(), 512), f.Reason
	class := f.Class
	if failures := d.failures(); class == failure.Temporary && maxAttempts > 0 && failures >= maxAttempts {
		class = failure.Permanent
		err = fmt.Errorf("gave up after %d failed attempts: %w", failures, err)
	}
	c.Metrics.CallbackRequests.WithLabelValues(c.op.Name, id, string(w.Event), class.String()).Inc()
	c.Metrics.Retries.WithLabelValues(c.op.Name, id, class.String()).Inc()
	if class == failure.Permanent {
		pr.Failed, pr.Digest, pr.Next = true, p.plan.EssenceDigest, time.Time{}
		msg := fmt.Sprintf("callback %s (%s) failed permanently: %v", id, w.Event, err)
		delete(p.mem.Requeue, requeueKey(w)) // a requeue chain ends with its call's permanent failure
		switch r := p.st.Round; {
		case w.Event == spec.EventTimer:
			// Only this tick is given up, as Kopf does: the timer fires on
			// at its interval, not at once (a hot loop) and not never (a
			// short outage would stop it for good). The record stays,
			// failed, until a tick succeeds.
			interval := timerInterval(w.Callback)
			c.scheduleTick(p, id, interval)
			msg += fmt.Sprintf("; the timer gives up this tick and fires again in %s", interval)
		case w.Event == spec.EventDelete:
			msg += fmt.Sprintf("; the finalizer %s stays until the object changes or it is annotated %s=true", c.finalizer(), decide.ReleaseAnnotation)
		case r == nil || r.Event != string(w.Event) || r.IsDone(id):
			// Not a call of the current round (a requeued one, say).
		case w.Event == spec.EventCreate:
			// The round stays open: the object was not created, so its next
			// change calls create again, not update (docs/contract.md).
			msg += "; create is called again when the object's spec, labels or annotations change"
		default:
			r.Done = append(r.Done, id) // no more calls until the essence changes
		}
		c.warn(p.obj, f.Reason, truncate(msg, 1024))
		log.Warn("callback failed permanently", "reason", f.Reason, "error", err)
		return
	}
	delay := retryDelay(retry, d.failures(), f.RetryAfter)
	pr.Failed, pr.Digest, pr.Next = false, p.plan.EssenceDigest, c.Clock().Add(delay)
	if f.Reason == "InvalidResponse" || d.failures() == 1 {
		c.warn(p.obj, f.Reason, truncate(fmt.Sprintf("callback %s (%s) failed, retrying in %s: %v", id, w.Event, delay.Round(time.Millisecond), err), 1024))
	}
	log.Warn("callback failed; will retry", "reason", f.Reason, "retryIn", delay, "error", err)
}

// requeueKey names the requeue w's answer sets or ends.
func requeueKey(w decide.Work) decide.RequeueKey {
	return decide.RequeueKey{Callback: w.Callback.ID, Event: w.Event}
}

// truncate cuts s to at most n bytes, marked with "…". The cut backs up
// to a character's first byte: Events and conditions must stay valid
// UTF-8.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := 0; i < utf8.UTFMax && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n] + "…"
}

// applyErrorStatus applies the status of an answer that reports an error,
// so a handler can show what went wrong where users look; its children,
// pruning, requeueAfter and finalized never are (docs/contract.md). A status
// that cannot be applied is reported, not retried: the handler's error
// decides about retries.
func (c *Controller) applyErrorStatus(ctx context.Context, p *pass, w decide.Work, patch map[string]any) {
	if p.gone {
		return
	}
	status, err := c.checkStatus(p, patch)
	if err == nil && status != nil {
		err = c.writeStatus(ctx, p, w, status)
	}
	if errors.Is(err, apply.ErrReplaced) {
		p.replaced = true
		return
	}
	if err != nil {
		f := failure.As(err)
		c.warn(p.obj, f.Reason, truncate(fmt.Sprintf("callback %s (%s) answered an error whose status was not applied: %v", w.Callback.ID, w.Event, err), 1024))
	}
}

// applyResponse checks the whole response first and applies it only when
// all of it is acceptable: children, pruning (sync only), status, requeue.
func (c *Controller) applyResponse(ctx context.Context, p *pass, w decide.Work, resp *callbacks.Response) error {
	if resp == nil {
		resp = &callbacks.Response{}
	}
	if p.gone {
		// The object is gone (vanished.go): only when to call again applies.
		resp = &callbacks.Response{RequeueAfter: resp.RequeueAfter, Finalized: resp.Finalized}
	} else if err := c.stillTheObject(p); err != nil {
		return err
	}
	var desired []*unstructured.Unstructured
	if resp.Children != nil {
		var err error
		if desired, err = check.CheckChildren(p.obj, *resp.Children, c.op.Spec.Children, c.scopes(), c.op.Name); err != nil {
			return err
		}
		if desired, err = c.refuseForeignChildren(ctx, p, desired); err != nil {
			return err
		}
	}
	var status map[string]any
	if resp.Status != nil {
		var err error
		if status, err = c.checkStatus(p, resp.Status); err != nil {
			return err
		}
	}
	var keys, want map[string]bool
	answersChildren := w.Event == spec.EventSync && resp.Children != nil
	if answersChildren {
		keys = childKeys(p.obj, desired)
		want = p.sync.wanted(w.Callback.ID, keys, p.plan.SyncCallbacks)
	}
	if err := c.writeAnswer(ctx, p, w, desired, want, status); err != nil {
		return err
	}
	if answersChildren {
		p.sync.add(w.Callback.ID, keys)
	}
	d, _ := resp.RequeueAfterDuration()
	if w.Event == spec.EventDelete && resp.Finalized != nil && !*resp.Finalized && d <= 0 {
		d = DefaultFinalizeRequeue
	}
	d = c.requeueDelay(w.Callback, d)
	switch {
	case w.Event == spec.EventTimer:
		// A timer's requeueAfter sets its next tick (recordSuccess).
	case d > 0:
		if p.mem.Requeue == nil {
			p.mem.Requeue = map[decide.RequeueKey]time.Time{}
		}
		p.mem.Requeue[requeueKey(w)] = c.Clock().Add(d)
	default:
		// A requeued call's entry lives until a call of its event succeeds:
		// another event's call is no answer to it.
		delete(p.mem.Requeue, requeueKey(w))
	}
	if w.Event == spec.EventSync {
		recordSynced(p, w.Callback.ID)
	}
	return nil
}

// recordSynced records that the sync callback id's call ended: its answer
// applied (succeeded) or its failure recorded. What the call wrote is
// ours: the sync digest is taken after it, so our own writes never trigger
// the next sync. In a pass of every due sync callback (Plan.FullSync) the
// digest and the resync clock move only once each of them ended: one cut
// short would otherwise miss the change until resyncPeriod, while one that
// failed has its retry record to call it again alone (calling the others
// again with each retry would repeat them). A call alone, for its
// requeueAfter or retry, moves no other's resync and takes in its own
// writes only, succeeded or failed (an error's status): a change before it
// (another callback's write earlier in the pass) is one the other sync
// callbacks have not seen.
func recordSynced(p *pass, id string) {
	p.sync.ended = append(p.sync.ended, id)
	switch {
	case !p.plan.FullSync:
		if p.mem.SyncDigest == p.sync.before && !p.foreign {
			p.mem.SyncDigest = syncDigest(p.obj, p.children, p.related)
		}
	case p.sync.endedAll(p.plan.Work):
		digest := syncDigest(p.obj, p.children, p.related)
		if p.foreign {
			digest = p.seenDigest // what someone else changed meanwhile calls sync again
		}
		p.mem.SyncDigest, p.mem.SyncedAt = digest, p.now
	}
}

// digestBeforeAlone is the sync digest before a sync call alone (not of a
// full pass). Before the pass's first call it is the recorded one: the
// plan found the digest unchanged (else the pass were full), and nothing
// was written since. Later, an earlier call may have written.
func digestBeforeAlone(p *pass) string {
	if !p.called {
		return p.mem.SyncDigest
	}
	return syncDigest(p.obj, p.children, p.related)
}
