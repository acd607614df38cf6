package engine

import (
	"time"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// honourRequest acts on a new value of the reconcile-requested-at
// annotation (docs/operations.md, "Debugging an object"): every backoff
// wait ends, a callback event that failed permanently but is still owed (one of
// the open round's, a sync or a timer) gets one more attempt, and sync and resume
// callbacks, where registered, run once as if the gateway had just
// started. The value's digest is recorded in the state, so it fires once,
// also across restarts.
func (c *Controller) honourRequest(p *pass, value string) {
	p.st.Requested = state.RequestDigest(value)
	deleting := p.obj.GetDeletionTimestamp() != nil
	for id, first := range p.st.Progress {
		cb, ok := c.callback(id)
		if !ok {
			continue
		}
		for _, pr := range first.Records() {
			switch {
			case pr.Failed && owed(c.op, cb, pr.Event, p, deleting):
				// Continues the same delivery as one more attempt, so that
				// maxAttempts still counts and one failure makes it permanent.
				pr.Failed, pr.Next = false, time.Time{}
				if pr.Event == string(spec.EventTimer) {
					// Its next tick is an interval away (recordFailure):
					// the attempt is now, as for the other events.
					tickNow(p, id)
				}
			case !pr.Failed:
				pr.Next = time.Time{}
			}
		}
	}
	if deleting {
		return
	}
	p.mem.SyncDigest = "" // sync is due: the digest "changed"
	p.mem.Seen = false    // resume runs on a handled object, as after a restart
}

// owed reports whether the state still waits for cb's call for event: one
// of the open round not done yet (create, or delete while deleting), a
// requeued one, a sync or a timer (one whose tick failed permanently fires
// again at its interval anyway; a request makes that now). For a record
// written before events were kept (event empty), any of cb's events.
func owed(op *spec.WebhookOperator, cb spec.Callback, event string, p *pass, deleting bool) bool {
	switch {
	case event == "":
	case deleting:
		return event == string(spec.EventDelete)
	default:
		return stillOwed(op, p, cb.ID, event)
	}
	if r := p.st.Round; r != nil && cb.Handles(spec.Event(r.Event)) && !r.IsDone(cb.ID) {
		return !deleting || r.Event == string(spec.EventDelete)
	}
	return !deleting && (cb.Handles(spec.EventSync) || cb.Handles(spec.EventTimer))
}

// tickNow makes timer id's next tick due now.
func tickNow(p *pass, id string) {
	if p.mem.TimerNext == nil {
		p.mem.TimerNext = map[string]time.Time{}
	}
	p.mem.TimerNext[id] = p.now
}

func (c *Controller) callback(id string) (spec.Callback, bool) {
	for _, cb := range c.op.Spec.Callbacks {
		if cb.ID == id {
			return cb, true
		}
	}
	return spec.Callback{}, false
}
