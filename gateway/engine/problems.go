package engine

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/spec"
)

// reasonRelatedSelectorInvalid is the reason of a related selector that
// cannot be rendered for an object.
const reasonRelatedSelectorInvalid = "RelatedSelectorInvalid"

// problems are what is wrong with an operator beyond its objects' callback
// failures: handler Secrets that cannot be reloaded, related selectors that
// cannot be rendered for an object. The newest is the WebhookOperator's
// status.lastError (docs/operations.md).
type problems struct {
	mu    sync.Mutex
	byKey map[string]problem
}

type problem struct {
	reason  string
	message string
	at      time.Time
}

// set records a problem under key and reports whether it is new or
// changed, so that each distinct problem is told about once.
func (ps *problems) set(key string, p problem) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if old, ok := ps.byKey[key]; ok && old.reason == p.reason && old.message == p.message {
		return false
	}
	if ps.byKey == nil {
		ps.byKey = map[string]problem{}
	}
	ps.byKey[key] = p
	return true
}

// clear forgets the problem under key and reports whether there was one.
func (ps *problems) clear(key string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	_, ok := ps.byKey[key]
	delete(ps.byKey, key)
	return ok
}

// newest returns the problem recorded last, if any.
func (ps *problems) newest() (problem, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out problem
	for _, p := range ps.byKey {
		if out.at.IsZero() || p.at.After(out.at) {
			out = p
		}
	}
	return out, !out.at.IsZero()
}

// lastProblem is the newest problem as status.lastError shows it; "" when
// there is none.
func (c *Controller) lastProblem() string {
	p, ok := c.problems.newest()
	if !ok {
		return ""
	}
	return p.reason + ": " + p.message
}

// reportProblem records a problem of the operator as a whole, or clears it
// when msg is empty. Each distinct problem is logged once and, when the
// operator is a WebhookOperator object, recorded as a Warning Event on it.
func (c *Controller) reportProblem(key, reason, msg string) {
	if msg == "" {
		if c.problems.clear(key) {
			c.log.Info("problem resolved", "problem", key)
		}
		return
	}
	if !c.problems.set(key, problem{reason: reason, message: msg, at: c.Clock()}) {
		return
	}
	c.log.Warn(msg, "reason", reason)
	if c.op.UID != "" {
		ref := &corev1.ObjectReference{APIVersion: spec.APIVersion, Kind: spec.Kind, Name: c.op.Name, UID: c.op.UID}
		c.Recorder.Event(ref, corev1.EventTypeWarning, reason, truncate(msg, 1024))
	}
}

func relatedProblemKey(objectKey string) string { return "related/" + objectKey }

// noteRelatedError reports a related selector that cannot be rendered for
// an object — a Warning Event on the object and the operator's lastError,
// once per distinct error — and clears it once the selector renders again.
func (c *Controller) noteRelatedError(obj *unstructured.Unstructured, key string, err error) {
	if err == nil {
		c.problems.clear(relatedProblemKey(key))
		return
	}
	if !c.problems.set(relatedProblemKey(key), problem{reason: reasonRelatedSelectorInvalid, message: key + ": " + err.Error(), at: c.Clock()}) {
		return
	}
	c.log.Warn("related selector cannot be rendered", "object", key, "error", err)
	c.warn(obj, reasonRelatedSelectorInvalid, truncate(err.Error()+
		"; sync callbacks wait until it renders, delete callbacks are called without these related objects", 1024))
}
