package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// kindRetry is how often an operator whose kind is missing looks again.
const kindRetry = 5 * time.Second

// ReasonRecordUnwritable: the operator cannot start because the gateway
// cannot record the kind it watches (KindRecord).
const ReasonRecordUnwritable = "RecordUnwritable"

// Manager runs a changing set of operators, one Controller each.
type Manager struct {
	deps     Deps
	log      *slog.Logger
	onStatus func(name string, st OperatorState)
	record   KindRecord // nil: nothing is remembered across restarts
	sweeper  sweeper

	mu        sync.Mutex
	running   map[string]*runningOperator
	releasing map[string][]schema.GroupKind // operators whose Release is to be retried
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
	op     *spec.WebhookOperator
	digest string
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	controller *Controller
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
		running: map[string]*runningOperator{}, releasing: map[string][]schema.GroupKind{}}
	m.sweeper = sweeper{deps: &m.deps, applier: apply.New(deps.Dynamic, deps.Mapper)}
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
			return
		}
		r.cancel()
		<-r.done
		prev = r.op
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &runningOperator{op: op, digest: digest, cancel: cancel, done: make(chan struct{})}
	m.running[op.Name] = r
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
// its stats.
func (m *Manager) runOperator(ctx context.Context, op *spec.WebhookOperator, prev *spec.WebhookOperator, r *runningOperator) {
	log := m.log.With("operator", op.Name)
	report := func(ready bool, reason, msg string, stats Stats) {
		m.onStatus(op.Name, OperatorState{Generation: op.Generation, Ready: ready, Reason: reason, Message: msg, Stats: stats})
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

	var c *Controller
	for {
		if ctx.Err() != nil {
			return
		}
		var err error
		c, err = NewController(ctx, m.deps, op)
		if err == nil {
			break
		}
		f := failure.As(err)
		reason := f.Reason
		if reason == "" || reason == "Error" {
			reason = spec.ReasonHandlerUnreachable
		}
		if f.Class == failure.Permanent {
			reason = spec.ReasonInvalidSpec
		}
		log.Warn("operator cannot start yet", "reason", reason, "error", err)
		report(false, reason, err.Error(), Stats{})
		if reason == spec.ReasonKindNotFound {
			m.deps.Mapper.Reset() // the CRD may have appeared since
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(kindRetry):
		}
	}
	r.mu.Lock()
	r.controller = c
	r.mu.Unlock()

	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	ticker := time.NewTicker(10 * time.Second)
	defer ticker.Stop()
	synced := c.Synced()
	for {
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Error("operator stopped", "error", err)
				report(false, "Stopped", err.Error(), Stats{})
			}
			return
		case <-synced:
			synced = nil // report once here, then on every tick
			report(true, spec.ReasonRunning, "watching "+op.Spec.Watch.APIVersion+" "+op.Spec.Watch.Kind, c.Stats())
		case <-ticker.C:
			report(true, spec.ReasonRunning, "watching "+op.Spec.Watch.APIVersion+" "+op.Spec.Watch.Kind, c.Stats())
		}
	}
}
