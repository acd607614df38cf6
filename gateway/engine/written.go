package engine

import (
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
)

// Most writes of a pass are answered with an object the rest of the pass
// reads only the metadata of: the state annotation (the pass's last
// write: then only resourceVersion, finalizers, deletionTimestamp and
// annotations are read), the finalizer's release of a deleting object,
// a status written by the pass's last callback, a child no later step of
// the pass sends to a handler. Those writes ask the API server for the
// metadata alone (apply's *Meta methods); the pass's object keeps its
// spec and status as read and takes the answer's metadata.

// adoptMeta makes the metadata a write returned the pass object's.
func (c *Controller) adoptMeta(p *pass, m *metav1.ObjectMeta) {
	if m == nil {
		return
	}
	p.obj = apply.WithMeta(p.obj, m)
	noteWritten(p, m.ResourceVersion)
}

// noteWritten remembers the resourceVersion a write produced.
func noteWritten(p *pass, resourceVersion string) {
	if rv, err := strconv.ParseUint(resourceVersion, 10, 64); err == nil && rv > p.mem.writtenRV {
		p.mem.writtenRV = rv
	}
}

// statusReadLater says whether, after the status write of work item w,
// anything in the pass reads the object's status: a later callback's
// request, a later status check, or the sync digest.
func (c *Controller) statusReadLater(p *pass, w decide.Work) bool {
	return c.op.HasEvent(spec.EventSync) || !p.lastWork || w.Event == spec.EventSync
}

// childrenReadLater says whether a child applied in this pass may still be
// read whole by it: sync and delete requests carry the children, and the
// sync digest covers them.
func (c *Controller) childrenReadLater(p *pass) bool {
	return c.op.HasEvent(spec.EventSync) || slices.ContainsFunc(p.plan.Work, func(w decide.Work) bool { return w.Event == spec.EventDelete })
}
