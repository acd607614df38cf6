package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/inspect"
	"github.com/opgate/opgate/gateway/spec"
)

// ConditionReconciled is the condition the gateway sets on watched objects
// of an operator with status.conditions: true.
const ConditionReconciled = "Reconciled"

// ownsConditions: the operator asked the gateway to keep
// status.observedGeneration and the Reconciled condition on its objects.
// Then the statuses handlers answer in a pass are applied to the pass's
// copy and written once, at its end, together with the gateway's fields.
func (c *Controller) ownsConditions() bool {
	return asksConditions(c.op)
}

// keepsConditions: this pass holds statuses for one write at its end. A
// deleting object of a refused operator is still let go of (a stuck
// Terminating object is worse than a missing condition), without them.
func (c *Controller) keepsConditions(p *pass) bool {
	return c.ownsConditions() && !p.plainStatus
}

// statusBuffer is what a pass of such an operator owes the status.
type statusBuffer struct {
	base  map[string]any // the status before the pass's first change
	held  bool           // base is set
	n     int            // statuses deferred in the pass
	calls []heldCall     // succeeded callbacks whose statuses are held
}

// heldCall is a callback whose success stands only once the status it
// answered is written.
type heldCall struct {
	w      decide.Work
	d      delivery
	undo   func()              // takes back what its success changed in memory
	answer *callbacks.Response // its Events wait for the status
	// roundDone: its success made the callback done in the open round
	// (recordSuccess). A sync or requeued call's did not: the round call
	// it made before stands, refused status or not.
	roundDone bool
}

// holdStatus prepares, before a callback is called, for its answered
// status to be held: the returned func, called once it succeeded with
// answer (roundDone: recordSuccess made it done in the open round),
// records it as held when it deferred a status, and says whether it did.
func (c *Controller) holdStatus(p *pass, w decide.Work, d delivery) func(answer *callbacks.Response, roundDone bool) bool {
	if !c.keepsConditions(p) {
		return func(*callbacks.Response, bool) bool { return false }
	}
	id, n, key := w.Callback.ID, p.status.n, requeueKey(w)
	rq, hadRq := p.mem.Requeue[key]
	tn, hadTn := p.mem.TimerNext[id]
	digest, syncedAt := p.mem.SyncDigest, p.mem.SyncedAt
	undo := func() {
		delete(p.mem.Requeue, key)
		if hadRq {
			p.mem.Requeue[key] = rq // not nil: it held rq
		}
		delete(p.mem.TimerNext, id)
		if hadTn {
			p.mem.TimerNext[id] = tn
		}
		if w.Event == spec.EventSync {
			p.mem.SyncDigest, p.mem.SyncedAt = digest, syncedAt
		}
	}
	return func(answer *callbacks.Response, roundDone bool) bool {
		if p.status.n == n {
			return false
		}
		p.status.calls = append(p.status.calls, heldCall{w: w, d: d, undo: undo, answer: answer, roundDone: roundDone})
		return true
	}
}

// countHeld counts the callbacks whose held statuses were written (or let
// go of with their deleting object) as the successes they now are, and
// records their answers' Events.
func (c *Controller) countHeld(p *pass) {
	for _, h := range p.status.calls {
		c.recordEvents(p.obj, h.answer)
		c.countSuccess(p, h.w)
	}
	p.status.calls = nil
}

// failHeld fails the callbacks whose held statuses could not be written
// (err), as temporary failures of the same delivery: they are called again
// after their backoff and their statuses written then. Their answers'
// Events are dropped: the answer that lands records its own, once.
func (c *Controller) failHeld(p *pass, err error) {
	f := failure.As(err)
	err = failure.Temporaryf(f.Reason, "the status it answered was not written: %w", err)
	// Each undo restores the memory as it was before its own call: last first.
	for i := len(p.status.calls) - 1; i >= 0; i-- {
		p.status.calls[i].undo()
	}
	for _, h := range p.status.calls {
		if r := p.st.Round; r != nil && h.roundDone && r.Event == string(h.w.Event) {
			r.Done = slices.DeleteFunc(r.Done, func(id string) bool { return id == h.w.Callback.ID })
		}
		c.recordFailure(p, h.w, h.d, err, c.callLog(p, h.w, h.d.attempt))
	}
	p.status.calls = nil
}

// deferStatus applies a handler's status patch to the pass's copy only.
func (c *Controller) deferStatus(p *pass, patch map[string]any) error {
	current, _, _ := unstructured.NestedMap(p.obj.Object, "status")
	if !p.status.held {
		p.status.base, p.status.held = current, true
	}
	merged, err := mergeJSON(current, patch)
	if err != nil {
		return fmt.Errorf("merge status: %w", err)
	}
	p.status.n++
	p.obj = p.obj.DeepCopy()
	if err := unstructured.SetNestedMap(p.obj.Object, merged, "status"); err != nil {
		return fmt.Errorf("merge status: %w", err)
	}
	return nil
}

// flushStatus writes, in one merge patch, the handlers' statuses of the pass
// and observedGeneration and Reconciled as the pass leaves the object. A
// status that would not change is not written, so the write the gateway's
// own watch sees next finds nothing to do: no loop. Its own write does not
// count as a change for sync either. A deleting object keeps Reconciled
// while the gateway holds it (its delete callbacks are due or failing).
// The pass that lets it go (releasing) writes it only if other finalizers
// keep the object: what the delete callbacks came to, and what holds it
// now. One the gateway does not hold is left as it is.
func (c *Controller) flushStatus(ctx context.Context, p *pass, releasing bool) error {
	if err := c.stillTheObject(p); err != nil {
		return err
	}
	current, _, _ := unstructured.NestedMap(p.obj.Object, "status")
	base := current
	if p.status.held {
		base = p.status.base
	}
	desired := current
	o := inspect.ClassifyState(c.op, p.obj, p.st, p.now)
	// A deleting object the gateway no longer holds is not its to describe,
	// even if the state it left still reads deleting.
	if p.obj.GetDeletionTimestamp() == nil || o.State == inspect.Deleting && !releasing && c.holdsFinalizer(p.obj) {
		// The previous Reconciled is the object's: a handler's conditions
		// replace the list in the pass's copy (merge patches replace arrays).
		prev := reconciledIn(base)
		if prev == nil && p.mem.reconciled.status != "" {
			// Removed by another writer: the one this process last left.
			prev = map[string]any{"status": p.mem.reconciled.status, "lastTransitionTime": p.mem.reconciled.since}
		}
		desired = withReconciled(current, prev, p.obj.GetGeneration(), o, p.now)
		if o.State == inspect.Deleting {
			c.sayHowToRelease(desired)
		}
	} else if others := c.otherFinalizers(p.obj); releasing && len(others) > 0 {
		// Let go of, yet kept by another controller's finalizer: later
		// passes leave an object the gateway does not hold as it is, so a
		// Reconciled left from a failed delete callback would blame the
		// gateway for as long as the others hold it.
		desired = withCondition(current, reconciledIn(base), p.obj.GetGeneration(), releasedCondition(o, others), p.now)
	}
	if check.EqualJSON(base, desired) {
		rememberReconciled(p, desired)
		return nil
	}
	if err := c.writeFlushed(ctx, p, base, desired); err != nil {
		return err
	}
	rememberReconciled(p, desired)
	return nil
}

// writeFlushed writes the change from base to desired, the pass's status.
func (c *Controller) writeFlushed(ctx context.Context, p *pass, base, desired map[string]any) error {
	patch, err := statusPatch(base, desired)
	if err != nil {
		return err
	}
	if !c.op.HasEvent(spec.EventSync) {
		// Only the sync digest reads the status after the pass's end.
		return c.patchStatus(ctx, p, patch, false)
	}
	before := syncDigest(p.obj, p.children, p.related)
	if err := c.patchStatus(ctx, p, patch, true); err != nil {
		return err
	}
	if p.mem.SyncDigest == before && !p.foreign {
		p.mem.SyncDigest = syncDigest(p.obj, p.children, p.related)
	}
	return nil
}

// rememberReconciled keeps the Reconciled condition status, now on the
// object, holds.
func rememberReconciled(p *pass, status map[string]any) {
	if r := reconciledIn(status); r != nil {
		p.mem.reconciled.status, _ = r["status"].(string)
		p.mem.reconciled.since, _ = r["lastTransitionTime"].(string)
	}
}

// reconciledIn returns status's Reconciled condition, or nil.
func reconciledIn(status map[string]any) map[string]any {
	list, _ := status["conditions"].([]any)
	for _, v := range list {
		if m, _ := v.(map[string]any); m["type"] == ConditionReconciled {
			return m
		}
	}
	return nil
}

// keepingReconciled returns a handler's status patch whose conditions
// list (a merge patch replaces arrays; null removes it) keeps the object's
// Reconciled condition when the list has none: Reconciled is the
// gateway's, whichever operator's handler answers. Dropped, its keeper
// would write it back, which wakes the other operator's sync to drop it
// again: a write loop.
func keepingReconciled(current, patch map[string]any) map[string]any {
	v, answered := patch["conditions"]
	list, isList := v.([]any) // or null: every condition removed
	kept := reconciledIn(current)
	if !answered || v != nil && !isList || kept == nil || reconciledIn(map[string]any{"conditions": list}) != nil {
		return patch
	}
	out := maps.Clone(patch)
	out["conditions"] = append(slices.Clone(list), runtime.DeepCopyJSON(kept)) // kept is the cache's
	return out
}

// withReconciled returns status with observedGeneration and the Reconciled
// condition for o, merged by type into status's conditions; a condition
// whose status stays keeps prev's lastTransitionTime, and the handlers' own
// conditions are kept as they are.
func withReconciled(status, prev map[string]any, generation int64, o inspect.Object, now time.Time) map[string]any {
	return withCondition(status, prev, generation, reconciledCondition(o), now)
}

// withCondition is withReconciled with the condition given.
func withCondition(status, prev map[string]any, generation int64, cond metav1.Condition, now time.Time) map[string]any {
	out := make(map[string]any, len(status)+2)
	for k, v := range status {
		out[k] = v
	}
	out["observedGeneration"] = generation
	cond.ObservedGeneration = generation
	var conds []any
	if list, ok := status["conditions"].([]any); ok {
		conds = slices.Clone(list)
	}
	cond.LastTransitionTime = metav1.NewTime(now.UTC().Truncate(time.Second))
	if prev != nil && prev["status"] == string(cond.Status) {
		if t, err := time.Parse(time.RFC3339, fmt.Sprint(prev["lastTransitionTime"])); err == nil {
			cond.LastTransitionTime = metav1.NewTime(t)
		}
	}
	m := map[string]any{"type": cond.Type, "status": string(cond.Status), "observedGeneration": cond.ObservedGeneration,
		"lastTransitionTime": cond.LastTransitionTime.UTC().Format(time.RFC3339), "reason": cond.Reason, "message": cond.Message}
	at := slices.IndexFunc(conds, func(v any) bool { m, _ := v.(map[string]any); return m["type"] == ConditionReconciled })
	if at >= 0 {
		conds[at] = m
	} else {
		conds = append(conds, m)
	}
	out["conditions"] = conds
	return out
}

// reconciledCondition says whether the object's callbacks are done: True
// once settled, False with the failing callback's reason and message.
func reconciledCondition(o inspect.Object) metav1.Condition {
	switch f := o.Failure; {
	case f != nil:
		reason := f.Reason
		if reason == "" {
			reason = "CallbackFailed"
		}
		msg := fmt.Sprintf("callback %s failed (%s, attempt %d): %s", f.Name(), f.Class, f.Attempts, f.Message)
		if f.NextRetry != nil {
			msg += "; next retry at " + f.NextRetry.UTC().Format(time.RFC3339)
		}
		return metav1.Condition{Type: ConditionReconciled, Status: metav1.ConditionFalse, Reason: reason, Message: truncate(msg, 1024)}
	case o.State == inspect.Deleting:
		return metav1.Condition{Type: ConditionReconciled, Status: metav1.ConditionUnknown, Reason: "Deleting", Message: "delete callbacks are still due"}
	case o.State == inspect.Pending:
		return metav1.Condition{Type: ConditionReconciled, Status: metav1.ConditionUnknown, Reason: "Progressing", Message: "callbacks are still due"}
	}
	return metav1.Condition{Type: ConditionReconciled, Status: metav1.ConditionTrue, Reason: "Reconciled", Message: "every callback due has succeeded"}
}

// releasedCondition is Reconciled for an object the pass lets go of while
// the finalizers others keep it: the delete callbacks' outcome (a failure
// if the release annotation let it go regardless), naming what holds it
// now instead of the gateway's finalizer.
func releasedCondition(o inspect.Object, others []string) metav1.Condition {
	held := truncate("the gateway let go; other finalizers hold it: "+strings.Join(others, ", "), 512)
	if o.Failure != nil {
		cond := reconciledCondition(o)
		cond.Message = truncate(cond.Message, 1024-len(held)-len("; …")) + "; " + held
		return cond
	}
	return metav1.Condition{Type: ConditionReconciled, Status: metav1.ConditionTrue, Reason: "Released", Message: held}
}

// otherFinalizers lists obj's finalizers other than the gateway's.
func (c *Controller) otherFinalizers(obj *unstructured.Unstructured) []string {
	var out []string
	for _, f := range obj.GetFinalizers() {
		if f != c.finalizer() {
			out = append(out, f)
		}
	}
	return out
}

// sayHowToRelease ends the message of the Reconciled condition of a
// deleting object the gateway holds (in status, as withReconciled left it)
// by what holds it and how to let it go regardless.
func (c *Controller) sayHowToRelease(status map[string]any) {
	if r := reconciledIn(status); r != nil {
		suffix := fmt.Sprintf("; being deleted: the finalizer %s stays until the delete callbacks succeed, or until the object is annotated %s=true", c.finalizer(), decide.ReleaseAnnotation)
		r["message"] = truncate(fmt.Sprint(r["message"]), 1024-len(suffix)) + suffix
	}
}

// statusPatch is the merge patch that turns base into desired.
func statusPatch(base, desired map[string]any) (map[string]any, error) {
	a, err := json.Marshal(orEmpty(base))
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(orEmpty(desired))
	if err != nil {
		return nil, err
	}
	raw, err := jsonpatch.CreateMergePatch(a, b)
	if err != nil {
		return nil, fmt.Errorf("status patch: %w", err)
	}
	var patch map[string]any
	return patch, utiljson.Unmarshal(raw, &patch)
}

func mergeJSON(doc, patch map[string]any) (map[string]any, error) {
	a, err := json.Marshal(orEmpty(doc))
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	raw, err := jsonpatch.MergePatch(a, b)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, utiljson.Unmarshal(raw, &out)
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// ReasonStatusSubresourceMissing is the Ready reason of an operator with
// status.conditions: true whose kind lacks the status subresource.
const ReasonStatusSubresourceMissing = "StatusSubresourceMissing"

// ReasonConditionsConflict is the Ready reason of an operator with
// status.conditions: true on a kind on which another operator of the
// gateway, whose name sorts first, keeps them (see conditionsHolders).
const ReasonConditionsConflict = "ConditionsConflict"

// ReasonStatusFieldsPruned is the Ready reason of an operator with
// status.conditions: true whose CRD's status schema has no room for the
// fields it keeps (also the Warning of a handler's status the schema
// prunes).
const ReasonStatusFieldsPruned = "StatusFieldsPruned"

// conditionsRefused says why the operator cannot keep conditions on its
// kind now, reason "" when it can: the kind lacks the status subresource,
// its status schema lacks room for them, or another operator keeps them
// (conditionsConflict). Such an operator touches no object until that
// changes.
func (c *Controller) conditionsRefused() (reason, message string) {
	if msg := c.subresourceMissing(); msg != "" {
		return ReasonStatusSubresourceMissing, msg
	}
	if msg := c.conditionsPruned(); msg != "" {
		return ReasonStatusFieldsPruned, msg
	}
	if msg := c.conditionsConflict(); msg != "" {
		return ReasonConditionsConflict, msg
	}
	return "", ""
}

func (c *Controller) refusesConditions() bool {
	reason, _ := c.conditionsRefused()
	return reason != ""
}

// subresourceMissing says why the operator cannot keep conditions on a
// kind without the status subresource, "" when it can. Without it the API
// server counts every status change in metadata.generation, so each write
// of observedGeneration would make it stale again: a write loop.
func (c *Controller) subresourceMissing() string {
	if c.ownsConditions() && c.statusless {
		gvr := c.parent.mapping.Resource
		return fmt.Sprintf("status.conditions: true needs the status subresource, which the built-in kind %s lacks "+
			"(the API server's discovery lists no %s/status: it keeps no status); turn status.conditions off",
			c.parent.mapping.GroupVersionKind.Kind, gvr.Resource)
	}
	if checker := c.status.current(); !c.ownsConditions() || checker == nil || checker.HasStatusSubresource() {
		return ""
	}
	return fmt.Sprintf("status.conditions: true needs the status subresource, which version %s of the CRD %s lacks "+
		"(without it every status write bumps metadata.generation, so observedGeneration never catches up); "+
		"add `subresources: {status: {}}` to that version of the CRD, or turn status.conditions off",
		c.status.version, c.crdName())
}

// conditionsPruned says why the operator cannot keep conditions on a kind
// whose status schema would prune them, "" when it can. The API server
// drops what its schema lacks: they would never show, and every pass
// would find them missing and write them again.
func (c *Controller) conditionsPruned() string {
	pruned := c.status.gatewayPruned()
	if !c.ownsConditions() || len(pruned) == 0 {
		return ""
	}
	return fmt.Sprintf("status.conditions: true needs room for observedGeneration and conditions in the status schema of "+
		"version %s of the CRD %s, which has none for %s (the API server would drop them, and every pass write them again); "+
		"add them to that version's status schema (observedGeneration: integer; conditions: array of objects with type, "+
		"status, observedGeneration, lastTransitionTime, reason and message), or turn status.conditions off",
		c.status.version, c.crdName(), strings.Join(pruned, ", "))
}

// gatewayFieldsPruned lists the fields of the status the gateway keeps
// with status.conditions (observedGeneration, a Reconciled condition) that
// checker's schema would prune. Other errors of such a status (a required
// field of the handlers') are not the gateway's to judge here.
func gatewayFieldsPruned(checker *check.StatusChecker) []string {
	kept := withReconciled(nil, nil, 1, inspect.Object{}, time.Unix(0, 0))
	_, pruned, _ := checker.Check(nil, kept)
	return pruned
}
