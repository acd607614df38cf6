package engine

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/spec"
)

// The backoff between attempts of a sweep or release that failed.
const (
	letGoFirstRetry = time.Second
	letGoMaxRetry   = 5 * time.Minute
)

// recordKind adds op's kind to the record before op's controller may put
// a finalizer on an object of that kind, so that a later gateway still
// knows where to let go. With the namespaces (NamespaceRecord) it is one
// write: an entry written with its namespaces alone, the process dying
// before its kind, would list the operator with no kind to release.
func (m *Manager) recordKind(ctx context.Context, op *spec.WebhookOperator) error {
	if m.record == nil {
		return nil
	}
	kinds, err := m.record.Kinds(ctx, op.Name)
	if err != nil {
		return err
	}
	gk := watchedKind(op.Spec.Watch)
	addKind := !slices.Contains(kinds, gk)
	if addKind {
		kinds = append(kinds, gk)
	}
	rec, ok := m.record.(NamespaceRecord)
	if !ok {
		if !addKind {
			return nil
		}
		return m.record.SetKinds(ctx, op.Name, kinds)
	}
	namespaces, addNamespaces, err := namespacesToRecord(ctx, rec, op)
	if err != nil || !addKind && !addNamespaces {
		return err
	}
	return rec.SetEntry(ctx, op.Name, kinds, namespaces)
}

// sweepStarted lets go of the objects a starting operator no longer
// watches: those of its own kind outside its namespaces and selector, and
// every object of the kinds it ran on before (the previous spec's, the
// recorded ones), within the namespaces recorded for it and prev's. It
// retries until it is done or ctx ends; then only op's kind (and kinds it
// may not list) and namespaces stay recorded.
func (m *Manager) sweepStarted(ctx context.Context, op, prev *spec.WebhookOperator) {
	scopes := scopesOf(op.Spec.Watch)
	if prev != nil {
		scopes.add(prev.Spec.Watch)
	}
	m.untilDone(ctx, op.Name, "sweep", func() error {
		recorded, err := m.recordedKinds(ctx, op.Name)
		if err != nil {
			return err
		}
		within, err := m.sweepScope(ctx, op.Name, scopes)
		if err != nil {
			return err
		}
		all := compactKinds(append(scopes.kinds(), recorded...))
		denied, err := m.sweeper.sweep(ctx, op.Name, op, all, within, scopes)
		if err != nil {
			return err
		}
		forbidden := denied.kinds()
		keep := compactKinds(append(slices.Clone(forbidden), watchedKind(op.Spec.Watch)))
		if m.record == nil {
			return nil
		}
		if formatKinds(keep) != formatKinds(recorded) {
			if err := m.record.SetKinds(ctx, op.Name, keep); err != nil {
				return err
			}
		}
		if len(forbidden) > 0 {
			// Those kinds were not swept: their objects may still be held
			// in namespaces the narrowing would forget.
			return nil
		}
		return m.narrowRecordedNamespaces(ctx, op, within)
	})
}

// Release stops the operator called name and lets go of every object of
// the kinds it ran on (the running spec's, stored's — the WebhookOperator's
// own watch as it is now — and the recorded ones) that holds its finalizer
// or state annotation; where the gateway may not list a kind in every
// namespace, in the namespaces those specs watched it in. The kinds the
// gateway may not list or patch stay recorded and are returned as a
// *ReleaseForbiddenError; other errors are returned too. Either way the
// next call tries again.
func (m *Manager) Release(ctx context.Context, name string, stored ...spec.WatchSpec) error {
	scopes := m.releaseScopes(name, stored)
	m.Remove(name)

	recorded, err := m.recordedKinds(ctx, name)
	if err != nil {
		return err
	}
	within, err := m.sweepScope(ctx, name, scopes)
	if err != nil {
		return err
	}
	forbidden, err := m.sweeper.sweep(ctx, name, nil, compactKinds(append(scopes.kinds(), recorded...)), within, scopes)
	if err != nil {
		return err
	}
	if m.record != nil {
		if err := m.record.SetKinds(ctx, name, forbidden.kinds()); err != nil {
			return err
		}
	}
	if forbidden != nil {
		return forbidden
	}
	m.mu.Lock()
	delete(m.releasing, name)
	m.mu.Unlock()
	return nil
}

// releaseScope is what a failed release of an operator looked at, kept
// for the next attempt: the operator, stopped by the first, no longer
// says what it watched.
type releaseScope struct {
	scopes kindScopes // where the attempts looked
	stored kindScopes // the stored watch they saw last; nil: none
}

// releaseScopes is where a release of the operator called name looks: the
// stored watch, the running spec's, and where the attempts before looked.
// A stored watch edited since the last attempt replaces the attempts'
// scopes, so that an author who drops a namespace the gateway may not
// list from a deleted WebhookOperator's watch.namespaces lets it go; an
// unchanged one keeps them, with the running spec the first attempt saw
// (it may differ from the stored: a newer edit the operator had not run,
// an invalid one it refused).
func (m *Manager) releaseScopes(name string, stored []spec.WatchSpec) kindScopes {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := scopesOf(stored...)
	prev := m.releasing[name]
	scopes := maps.Clone(seen)
	switch {
	case prev != nil && len(stored) == 0:
		scopes, seen = maps.Clone(prev.scopes), prev.stored
	case prev != nil && sameScopes(seen, prev.stored):
		scopes = maps.Clone(prev.scopes)
	}
	if r, ok := m.running[name]; ok {
		scopes.add(r.op.Spec.Watch)
	}
	m.releasing[name] = &releaseScope{scopes: scopes, stored: seen}
	return maps.Clone(scopes) // m.releasing's is changed under m.mu only
}

// ReleaseUnlisted lets go, in the background, of the operators recorded
// that are not among running: those a file-mode gateway ran before and
// no longer runs.
func (m *Manager) ReleaseUnlisted(ctx context.Context, recorded, running []string) {
	for _, name := range recorded {
		if slices.Contains(running, name) {
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.untilDone(ctx, name, "release", func() error {
				// A kind the gateway may not list or patch stays recorded
				// (logged): the next start tries again.
				if err := m.Release(ctx, name); !errors.As(err, new(*ReleaseForbiddenError)) {
					return err
				}
				return nil
			})
		}()
	}
}

func (m *Manager) recordedKinds(ctx context.Context, name string) ([]schema.GroupKind, error) {
	if m.record == nil {
		return nil, nil
	}
	return m.record.Kinds(ctx, name)
}

// untilDone runs fn until it succeeds or ctx ends, doubling the wait
// between attempts from letGoFirstRetry up to letGoMaxRetry.
func (m *Manager) untilDone(ctx context.Context, name, what string, fn func() error) {
	b := &backoff.ExponentialBackOff{
		InitialInterval: letGoFirstRetry, Multiplier: 2, MaxInterval: letGoMaxRetry,
		Stop: backoff.Stop, Clock: backoff.SystemClock, // no jitter, no time limit
	}
	b.Reset()
	_ = backoff.RetryNotify(fn, backoff.WithContext(b, ctx), func(err error, delay time.Duration) {
		m.log.Warn(what+" failed; retrying", "operator", name, "retryIn", delay.String(), "error", err)
	})
}

func compactKinds(kinds []schema.GroupKind) []schema.GroupKind {
	out := make([]schema.GroupKind, 0, len(kinds))
	for _, gk := range kinds {
		if !slices.Contains(out, gk) {
			out = append(out, gk)
		}
	}
	return out
}
