package engine

import (
	"strings"

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

// Stats counts from the informer cache; safe to call while running.
func (c *Controller) Stats() Stats {
	var s Stats
	if c.parent == nil || c.parent.informers == nil {
		return s
	}
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
	// An operator-wide problem (a Secret, a selector) says more than one
	// object's failing callback.
	if p := c.lastProblem(); p != "" {
		s.LastError = p
	}
	c.Metrics.WatchedObjects.WithLabelValues(c.op.Name).Set(float64(s.WatchedObjects))
	c.Metrics.FinalizersPending.WithLabelValues(c.op.Name).Set(float64(s.FinalizersPending))
	return s
}
