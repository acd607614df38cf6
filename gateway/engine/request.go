package engine

import (
	"time"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// honourRequest acts on a new value of the reconcile-requested-at
// annotation (docs/operations.md, "Debugging an object"): every backoff
// wait ends, a callback that failed permanently but is still owed (one of
// the open round's, a sync or a timer) gets one more attempt, and sync and resume
// callbacks, where registered, run once as if the gateway had just
// started. The value's digest is recorded in the state, so it fires once,
// also across restarts.
func (c *Controller) honourRequest(p *pass, value string) {
	p.st.Requested = state.RequestDigest(value)
	deleting := p.obj.GetDeletionTimestamp() != nil
	for id, pr := range p.st.Progress {
		cb, ok := c.callback(id)
		switch {
		case !ok:
		case pr.Failed && owed(cb, p, deleting):
			// Continues the same delivery as one more attempt, so that
			// maxAttempts still counts and one failure makes it permanent.
			pr.Failed, pr.Next = false, time.Time{}
		case !pr.Failed:
			pr.Next = time.Time{}
		}
	}
	if deleting {
		return
	}
	p.mem.SyncDigest = "" // sync is due: the digest "changed"
	p.mem.Seen = false    // resume runs on a handled object, as after a restart
}

// owed reports whether the state still waits for cb: a callback of the open
// round not done yet (create, or delete while deleting), a sync or a timer
// (a timer that failed permanently is not called again until the essence
// changes: a handler outage past maxAttempts would stop it for good).
func owed(cb spec.Callback, p *pass, deleting bool) bool {
	if r := p.st.Round; r != nil && cb.Handles(spec.Event(r.Event)) && !r.IsDone(cb.ID) {
		return !deleting || r.Event == string(spec.EventDelete)
	}
	return !deleting && (cb.Handles(spec.EventSync) || cb.Handles(spec.EventTimer))
}

func (c *Controller) callback(id string) (spec.Callback, bool) {
	for _, cb := range c.op.Spec.Callbacks {
		if cb.ID == id {
			return cb, true
		}
	}
	return spec.Callback{}, false
}
