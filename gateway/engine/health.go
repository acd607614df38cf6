package engine

import (
	"sort"
	"strings"

	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/spec"
)

// Health says whether the controller handles objects, for the Ready
// condition and /readyz: ready means its caches synced and its workers
// run, and no list or watch of its kinds fails now. Otherwise reason is
// CacheNotSynced, or Forbidden, KindNotFound or WatchFailed with the API
// server's message (see watchFailure), or KindNotFound while it runs
// without a child or related kind that is not served (missingHealth). Safe to call from any goroutine.
func (c *Controller) Health() (ready bool, reason, message string) {
	if what, err, failing := c.health.failing(); failing {
		reason, message = watchFailure(what, err)
		return false, reason, message
	}
	if reason, msg := c.conditionsRefused(); reason != "" {
		return false, reason, msg
	}
	if !c.running.Load() {
		waiting := c.unsyncedNames()
		if len(waiting) == 0 {
			return false, spec.ReasonCacheNotSynced, "caches synced; starting workers"
		}
		return false, spec.ReasonCacheNotSynced, "waiting for the caches of " + strings.Join(waiting, ", ") + " to sync"
	}
	// Running, but not all it was asked to: a user must see which kind
	// its objects lack (the kind's CRD not installed).
	if msg := c.missingHealth(); msg != "" {
		return false, spec.ReasonKindNotFound, msg
	}
	return true, spec.ReasonRunning, "watching " + c.op.Spec.Watch.APIVersion + " " + c.op.Spec.Watch.Kind
}

// noteWatchHealth makes a failing list or watch (a missing permission
// above all) a problem of the operator — a Warning Event on it and its
// lastError, once per distinct failure — and clears it when the watch
// works again: the Ready condition alone is easy to miss.
func (c *Controller) noteWatchHealth(reason, msg string) {
	switch reason {
	case spec.ReasonForbidden, spec.ReasonKindNotFound, spec.ReasonWatchFailed:
		c.reportProblem(watchProblemKey, reason, msg)
	case spec.ReasonRunning:
		c.reportProblem(watchProblemKey, "", "")
	}
}

const watchProblemKey = "watch"

// HealthChanged is signalled when Health may have changed.
func (c *Controller) HealthChanged() <-chan struct{} { return c.changed }

func (c *Controller) notifyChanged() {
	select {
	case c.changed <- struct{}{}:
	default: // a signal is pending already
	}
}

// namedInformer is one informer of the controller and what it watches.
type namedInformer struct {
	what string
	cache.SharedIndexInformer
}

// informers returns every informer of the controller. A list, not a map by
// name: a kind may be watched twice (as parent and related, as child and
// related, each with its own selector), and each informer must run.
func (c *Controller) informers() []namedInformer {
	var out []namedInformer
	for _, w := range c.allWatched() {
		for ns, inf := range w.informers {
			out = append(out, namedInformer{w.describe(ns), inf})
		}
	}
	if c.crdInformer != nil {
		out = append(out, namedInformer{c.crdDescription(), c.crdInformer})
	}
	return append(out, c.scopeInformers...)
}

// allSynced is a cache.InformerSynced over every informer.
func (c *Controller) allSynced() bool { return len(c.unsyncedNames()) == 0 }

func (c *Controller) unsyncedNames() []string {
	var out []string
	for _, inf := range c.informers() {
		if !inf.HasSynced() {
			out = append(out, inf.what)
		}
	}
	sort.Strings(out)
	return out
}
