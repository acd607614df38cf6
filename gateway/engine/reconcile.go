package engine

import (
	"context"
	"fmt"
	"maps"
	"runtime/debug"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// reconcileTimeout bounds one object's pass, callbacks included.
const reconcileTimeout = 5 * time.Minute

// objectMemory is what this process remembers of one object.
type objectMemory struct {
	decide.Memory
	// writtenRV is the resourceVersion our last write produced; an informer
	// copy older than it is stale, and its watch event is still to come.
	writtenRV uint64
}

func (c *Controller) memoryOf(key string) *objectMemory {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.memory[key]
	if !ok {
		m = &objectMemory{}
		c.memory[key] = m
	}
	return m
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.memory, key)
}

func (c *Controller) processNextWorkItem(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	c.Metrics.QueueDepth.WithLabelValues(c.op.Name).Set(float64(c.queue.Len()))

	wake, err := c.reconcileSafely(ctx, key)
	if err != nil {
		if ctx.Err() != nil {
			return true // shutting down: the next gateway picks the key up
		}
		c.log.Error("reconcile failed; retrying", "object", key, "error", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	if wake > 0 {
		c.queue.AddAfter(key, wake)
	}
	return true
}

// reconcileSafely turns a panic into an error so one bad object cannot
// stop a worker, and bounds the pass with a deadline.
func (c *Controller) reconcileSafely(ctx context.Context, key string) (wake time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic reconciling %s: %v\n%s", key, r, debug.Stack())
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	return c.reconcile(ctx, key)
}

// pass is one reconcile of one object: the mutable state of the loop.
type pass struct {
	key      string
	obj      *unstructured.Unstructured
	st       *state.State
	stateRaw string
	mem      *objectMemory
	plan     decide.Plan
	children map[string]map[string]*unstructured.Unstructured
	related  map[string]map[string]*unstructured.Unstructured
	now      time.Time
}

func (c *Controller) reconcile(ctx context.Context, key string) (time.Duration, error) {
	cached, ok := c.parent.get(key)
	if !ok {
		c.forget(key)
		return 0, c.releaseIfUnwatched(ctx, key)
	}
	mem := c.memoryOf(key)
	if rv, err := strconv.ParseUint(cached.GetResourceVersion(), 10, 64); err == nil && rv < mem.writtenRV {
		return 0, nil // stale cache: the event of our own write re-queues the key
	}
	p := &pass{key: key, obj: cached.DeepCopy(), mem: mem, now: c.Clock()}
	p.stateRaw = p.obj.GetAnnotations()[c.stateAnnotation()]
	st, err := state.Decode(p.stateRaw)
	if err != nil {
		c.warn(p.obj, "InvalidState", fmt.Sprintf("annotation %s is unreadable (%v); starting from a clean state", c.stateAnnotation(), err))
		st = &state.State{}
	}
	p.st = st
	if c.needsObserved() {
		p.children = c.ownedChildren(p.obj)
		if p.related, err = c.relatedObjects(p.obj); err != nil {
			return 0, err
		}
	}
	var digest string
	if c.op.HasEvent(spec.EventSync) {
		// Only sync reads it, and it marshals every observed object.
		digest = syncDigest(p.obj, p.children, p.related)
	}
	p.plan = decide.Decide(decide.Input{
		Operator: c.op, Object: p.obj, State: p.st, Memory: &mem.Memory,
		SyncDigest: digest, HoldsFinalizer: c.holdsFinalizer(p.obj), Now: p.now,
	})
	deleting := p.obj.GetDeletionTimestamp() != nil

	if p.plan.AddFinalizer {
		if err := c.writeFinalizer(ctx, p, true); err != nil {
			return 0, err
		}
	}
	if p.plan.ReleaseFinalizer && !deleting {
		if err := c.writeFinalizer(ctx, p, false); err != nil {
			return 0, err
		}
	}
	if r := p.plan.StartRound; r != nil {
		p.st.Round = r
		for _, id := range p.plan.RoundCallbacks {
			if pr := p.st.Progress[id]; pr != nil && pr.Failed {
				p.st.Clear(id) // a new round is a fresh start for a failed callback
			}
		}
	}
	for _, w := range p.plan.Work {
		if ctx.Err() != nil {
			break
		}
		c.runWork(ctx, p, w)
	}
	roundDone := p.st.Round != nil && allDone(p.st.Round, p.plan.RoundCallbacks)
	if roundDone {
		switch spec.Event(p.st.Round.Event) {
		case spec.EventCreate, spec.EventUpdate:
			if err := p.st.SetHandled(p.plan.Essence, c.EssenceCap); err != nil {
				return 0, err
			}
		}
		if !deleting || p.st.Round.Event == string(spec.EventDelete) {
			p.st.Round = nil
		}
	}
	if deleting && (p.plan.ReleaseFinalizer || roundDone && c.holdsFinalizer(p.obj)) {
		if err := c.writeFinalizer(ctx, p, false); err != nil {
			return 0, err
		}
		return 0, nil // the object is going away; no state to keep
	}
	if err := c.writeState(ctx, p); err != nil {
		return 0, err
	}
	mem.Seen = true
	return c.nextWake(p), nil
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
	plan := decide.Decide(decide.Input{
		Operator: c.op, Object: p.obj, State: p.st, Memory: &mem,
		SyncDigest: p.mem.SyncDigest, HoldsFinalizer: c.holdsFinalizer(p.obj), Now: p.now,
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
	c.adopt(p, out)
	return nil
}

// writeState writes the state annotation when it changed.
func (c *Controller) writeState(ctx context.Context, p *pass) error {
	value, err := p.st.Encode()
	if err != nil {
		return err
	}
	if value == p.stateRaw {
		return nil
	}
	out, err := c.applier.SetAnnotation(ctx, p.obj, c.stateAnnotation(), &value)
	c.countApply("state", err)
	if err != nil {
		return err
	}
	c.adopt(p, out)
	p.stateRaw = value
	return nil
}

// adopt makes the object a write returned the pass's current object.
func (c *Controller) adopt(p *pass, out *unstructured.Unstructured) {
	if out == nil {
		return
	}
	p.obj = out
	if rv, err := strconv.ParseUint(out.GetResourceVersion(), 10, 64); err == nil && rv > p.mem.writtenRV {
		p.mem.writtenRV = rv
	}
}

func (c *Controller) countApply(action string, err error) {
	result := "success"
	if err != nil {
		result = failure.As(err).Class.String()
	}
	c.Metrics.ApplyResults.WithLabelValues(c.op.Name, action, result).Inc()
}

func (c *Controller) warn(obj *unstructured.Unstructured, reason, msg string) {
	c.Recorder.Event(obj, "Warning", reason, msg)
	c.Metrics.ApplyResults.WithLabelValues(c.op.Name, "event", "success").Inc()
}

// keyOf is the queue key of an object.
func keyOf(obj *unstructured.Unstructured) string {
	k, _ := cache.MetaNamespaceKeyFunc(obj)
	return k
}
