package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// kindRetry is how often an operator whose kind is missing looks again.
const kindRetry = 5 * time.Second

// ReasonRecordUnwritable: the operator cannot start because the gateway
// cannot record the kind it watches (KindRecord).
const ReasonRecordUnwritable = "RecordUnwritable"

// statsPeriod is how often a running operator's state is reported even
// when it did not change, for its counts.
const statsPeriod = 10 * time.Second

// Manager runs a changing set of operators, one Controller each.
type Manager struct {
	deps     Deps
	log      *slog.Logger
	onStatus func(name string, st OperatorState)
	record   KindRecord // nil: nothing is remembered across restarts
	sweeper  sweeper
	peers    peers            // the running controllers, for Deps.ChildOwners
	claims   conditionsClaims // of the operators in running, for Deps.ConditionsClaims

	mu        sync.Mutex
	running   map[string]*runningOperator
	releasing map[string]*releaseScope // operators whose Release is to be retried
	wg        sync.WaitGroup
}

// OperatorState is what the manager reports about one operator.
type OperatorState struct {
	Generation int64
	Ready      bool
	Reason     string // spec.Reason*
	Message    string
	Stats      Stats
}

type runningOperator struct {
	op         *spec.WebhookOperator
	digest     string
	cancel     context.CancelFunc
	done       chan struct{}
	generation atomic.Int64  // reported: an edit that keeps the digest updates it
	poke       chan struct{} // asks for a report now

	mu              sync.Mutex
	controller      *Controller
	reason, message string // its last report while no controller is built (View)
}

// NewManager validates deps. onStatus (may be nil) is told whenever an
// operator's state changes and periodically while it runs. record (may be
// nil) remembers the kinds each operator ran on across restarts.
func NewManager(deps Deps, onStatus func(name string, st OperatorState), record KindRecord) (*Manager, error) {
	if err := deps.validate(); err != nil {
		return nil, err
	}
	if onStatus == nil {
		onStatus = func(string, OperatorState) {}
	}
	m := &Manager{deps: deps, log: deps.Logger, onStatus: onStatus, record: record,
		running: map[string]*runningOperator{}, releasing: map[string]*releaseScope{}}
	m.sweeper = sweeper{deps: &m.deps, applier: deps.applier()}
	if m.deps.ChildOwners == nil {
		m.deps.ChildOwners = &m.peers
	}
	if m.deps.ConditionsClaims == nil {
		m.deps.ConditionsClaims = &m.claims
	}
	return m, nil
}

// Apply starts op, or restarts it when its spec changed; either way it then
// lets go of the objects op does not watch (see sweepStarted). op must be
// valid and defaulted.
func (m *Manager) Apply(ctx context.Context, op *spec.WebhookOperator) {
	digest := essence.Digest(op.Spec)
	m.mu.Lock()
	defer m.mu.Unlock()
	var prev *spec.WebhookOperator
	if r, ok := m.running[op.Name]; ok {
		if r.digest == digest {
			// Same spec under a new generation: it runs as it is, and
			// says so for the new generation.
			if r.generation.Swap(op.Generation) != op.Generation {
				select {
				case r.poke <- struct{}{}:
				default:
				}
			}
			return
		}
		r.cancel()
		<-r.done
		prev = r.op
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &runningOperator{op: op, digest: digest, cancel: cancel, done: make(chan struct{}), poke: make(chan struct{}, 1)}
	r.generation.Store(op.Generation)
	m.running[op.Name] = r
	m.reclaimLocked() // before op runs: an operator it now refuses stops writing first
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(r.done)
		m.runOperator(rctx, op, prev, r)
	}()
}

// Remove stops an operator.
func (m *Manager) Remove(name string) {
	m.mu.Lock()
	r, ok := m.running[name]
	delete(m.running, name)
	m.mu.Unlock()
	if ok {
		r.cancel()
		<-r.done
		m.deps.Metrics.Forget(name)
		// Only now, its writes done, may another operator take over its
		// conditions.
		m.mu.Lock()
		m.reclaimLocked()
		m.mu.Unlock()
	}
}

// reclaimLocked decides again which operator keeps the status conditions
// of each kind, and tells each running controller whose keeper changed.
// While an operator restarts with a new spec, the old one stays in running
// until the new replaces it: another operator does not take over for the
// moment between. m.mu is held.
func (m *Manager) reclaimLocked() {
	ops := make([]*spec.WebhookOperator, 0, len(m.running))
	for _, r := range m.running {
		ops = append(ops, r.op)
	}
	changed := m.claims.set(ops)
	for name, r := range m.running {
		if !changed(name) {
			continue
		}
		r.mu.Lock()
		c := r.controller
		r.mu.Unlock()
		if c != nil { // else it has not run yet: it reads the claims when it does
			c.conditionsClaimChanged()
		}
	}
}

// Wait blocks until every operator stopped (after ctx is cancelled).
func (m *Manager) Wait() { m.wg.Wait() }

// Names returns the operators running or waiting to run.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.running))
	for n := range m.running {
		out = append(out, n)
	}
	return out
}

// runOperator records the operator's kind, lets go of what it does not
// watch (in the background), builds the controller, waiting while its
// kinds are missing (reported as KindNotFound), then runs it and reports
// its health and stats: when its health changes, and every statsPeriod.
func (m *Manager) runOperator(ctx context.Context, op *spec.WebhookOperator, prev *spec.WebhookOperator, r *runningOperator) {
	log := m.log.With("operator", op.Name)
	report := func(ready bool, reason, msg string, stats Stats) {
		r.mu.Lock()
		r.reason, r.message = reason, msg
		r.mu.Unlock()
		m.onStatus(op.Name, OperatorState{Generation: r.generation.Load(), Ready: ready, Reason: reason, Message: msg, Stats: stats})
	}
	m.untilDone(ctx, op.Name, "record the watched kind", func() error {
		err := m.recordKind(ctx, op)
		if err != nil {
			report(false, ReasonRecordUnwritable, err.Error(), Stats{})
		}
		return err
	})
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		m.sweepStarted(ctx, op, prev)
	}()
	defer func() { <-swept }()

	var memory map[string]*objectMemory // what the process remembers across a rescope
	for {
		c := m.newController(ctx, op, log, report)
		if c == nil {
			return
		}
		c.adoptMemory(memory)
		if !m.runController(ctx, c, r, log, report) {
			return
		}
		// A CRD of its kinds came back with the other scope: map the
		// kinds afresh and decide again (checkWatchScope, owners). The
		// process has not restarted: what it remembers of each object
		// (seen, so no resume; requeues, timers) goes on.
		memory = c.releaseMemory()
		r.mu.Lock()
		r.controller = nil
		r.mu.Unlock()
		// Discovery may still serve the old scope for a moment: the new
		// controller would be built on it and stop again at once. A pause
		// between starts keeps that from spinning.
		select {
		case <-ctx.Done():
			return
		case <-time.After(rescopePause):
		}
		m.deps.Mapper.Reset()
	}
}

// rescopePause is the least time between two starts of an operator whose
// kind changed scope.
const rescopePause = time.Second

// runController runs c and reports its health and stats until it stops;
// it says whether c stopped because a CRD of its kinds changed scope.
func (m *Manager) runController(ctx context.Context, c *Controller, r *runningOperator, log *slog.Logger, report func(bool, string, string, Stats)) (rescoped bool) {
	r.mu.Lock()
	r.controller = c
	r.mu.Unlock()
	m.peers.add(c)
	defer m.peers.remove(c)

	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	ticker := time.NewTicker(statsPeriod)
	defer ticker.Stop()
	var last string
	reportHealth := func(always bool) {
		ready, reason, msg := c.Health()
		c.noteWatchHealth(reason, msg)
		if now := reason + ": " + msg; always || now != last {
			if !ready && now != last && reason != spec.ReasonCacheNotSynced {
				log.Warn("operator not ready", "reason", reason, "message", msg)
			}
			last = now
			report(ready, reason, msg, c.Stats())
		}
	}
	reportHealth(true)
	for {
		select {
		case err := <-done:
			if errors.Is(err, errKindRescoped) {
				return true
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Error("operator stopped", "error", err)
				report(false, "Stopped", err.Error(), Stats{})
			}
			return false
		case <-c.HealthChanged():
			reportHealth(false)
		case <-r.poke:
			reportHealth(true)
		case <-ticker.C:
			reportHealth(true)
		}
	}
}

// newController builds the operator's controller, retrying while it
// cannot (a kind missing, a secret unreadable, ...) and reporting why. It
// returns nil once ctx is done.
func (m *Manager) newController(ctx context.Context, op *spec.WebhookOperator, log *slog.Logger, report func(bool, string, string, Stats)) *Controller {
	var last string // logged once per distinct problem, as docs/operations.md says
	for {
		c, err := NewController(ctx, m.deps, op)
		if err == nil {
			return c
		}
		f := failure.As(err)
		reason := f.Reason
		if reason == "" || reason == "Error" {
			reason = spec.ReasonHandlerUnreachable
		}
		if f.Class == failure.Permanent && !namedRefusal(reason) {
			reason = spec.ReasonInvalidSpec
		}
		if now := reason + ": " + err.Error(); now != last {
			log.Warn("operator cannot start yet", "reason", reason, "error", err)
			last = now
		}
		report(false, reason, err.Error(), Stats{})
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(kindRetry):
		}
	}
}

// namedRefusal says whether a permanent failure to build a controller
// keeps its own reason on Ready: a valid spec refused by what only the
// gateway knows (its Secret namespace, the watched kind's scope), which
// InvalidSpec would misname. Other permanent failures are InvalidSpec.
func namedRefusal(reason string) bool {
	return reason == ReasonSecretNotAllowed || reason == spec.ReasonNamespacesOnClusterScopedKind
}
