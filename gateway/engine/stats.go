package engine

import (
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/opgate/opgate/gateway/state"
)

// Stats summarizes an operator's objects for its status and metrics.
type Stats struct {
	WatchedObjects    int
	CallbacksFailing  int
	FinalizersPending int
	LastError         string
}

// statsCache is the last walk of the parents' cache, and the count of
// parent events it saw.
type statsCache struct {
	mu     sync.Mutex
	walked bool
	events uint64
	stats  Stats
}

// Stats counts from the informer cache; safe to call while running. The
// cache is walked again only when a parent event was handled since the
// last walk: every 10 s it visits every object, which at 10 000 objects
// was most of an idle gateway's CPU. A change whose event is still on its
// way to the handler is counted once the event is handled, by the next
// summary.
func (c *Controller) Stats() Stats {
	if c.parent == nil || c.parent.informers == nil {
		return Stats{}
	}
	c.statsCache.mu.Lock()
	defer c.statsCache.mu.Unlock()
	// The count is read before the walk: an event during it walks again.
	if events := c.parentEvents.Load(); !c.statsCache.walked || events != c.statsCache.events {
		c.statsCache.stats = c.walkParents()
		c.statsCache.walked, c.statsCache.events = true, events
	}
	s := c.statsCache.stats
	// An operator-wide problem (a Secret, a selector) says more than one
	// object's failing callback.
	if p := c.lastProblem(); p != "" {
		s.LastError = p
	}
	c.Metrics.WatchedObjects.WithLabelValues(c.op.Name).Set(float64(s.WatchedObjects))
	c.Metrics.FinalizersPending.WithLabelValues(c.op.Name).Set(float64(s.FinalizersPending))
	return s
}

// walkParents counts over every cached parent.
func (c *Controller) walkParents() Stats {
	var s Stats
	for _, obj := range c.parent.list("", labels.Everything()) {
		s.WatchedObjects++
		if obj.GetDeletionTimestamp() != nil && c.holdsFinalizer(obj) {
			s.FinalizersPending++
		}
		raw, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "metadata", "annotations", c.stateAnnotation())
		value, _ := raw.(string)
		if !strings.Contains(value, `"p":`) {
			continue // no callback failing: no need to decode (every 10 s, every object)
		}
		// A state copied from another object says nothing about this one.
		st, _, err := state.DecodeFor(value, string(obj.GetUID()))
		if err != nil {
			continue
		}
		for id, p := range st.Progress {
			s.CallbacksFailing++
			if p.Message != "" {
				s.LastError = id + " on " + keyOf(obj) + ": " + p.Message
			}
		}
	}
	return s
}
