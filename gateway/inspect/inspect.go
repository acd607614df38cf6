// Package inspect answers "why is my object not reconciled?": from a
// WebhookOperator and the objects it watches it builds the report that
// `gateway status` prints and the web view renders — per operator, per
// object and one object in detail. It decodes the state annotation with
// the engine's own code (gateway/state, callbacks/essence), so it can never
// disagree with what the gateway will do. Pure functions over objects: the
// callers fetch them.
package inspect

import (
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// ReconcileRequestAnnotation asks the gateway to end any backoff wait and
// run the object's due callbacks once: each new value fires once.
const ReconcileRequestAnnotation = decide.ReconcileRequestAnnotation

// State classifies an object for one operator.
type State string

// The states, from the most to the least in need of attention (Less sorts
// by this order).
const (
	// PermanentlyFailed: a callback failed permanently at the object's
	// current essence; it is not called again until the essence changes
	// (or a reconcile is requested).
	PermanentlyFailed State = "permanently_failed"
	// Failing: a callback failed temporarily and its next attempt is due
	// (or a timer's tick failed for good: it fires again at its interval).
	Failing State = "failing"
	// BackingOff: a callback failed temporarily and waits for its retry.
	BackingOff State = "backing_off"
	// Deleting: the object is being deleted and the operator still holds
	// its finalizer (or its delete round is open).
	Deleting State = "deleting"
	// Pending: a round is open, a change not handled yet or still owed to a
	// callback (state.Behind), nothing failed.
	Pending State = "pending"
	// Settled: handled, nothing failing, nothing waiting.
	Settled State = "settled"
)

// States lists every State in order of attention.
var States = []State{PermanentlyFailed, Failing, BackingOff, Deleting, Pending, Settled}

func (s State) rank() int {
	for i, x := range States {
		if x == s {
			return i
		}
	}
	return len(States)
}

// Unsettled reports whether the object needs a look: anything but settled
// and pending.
func (s State) Unsettled() bool { return s != Settled && s != Pending }

// Failure is a callback's last failure, as the state annotation keeps it.
type Failure struct {
	Callback string `json:"callback"`
	// Event is the event whose call failed; empty in records written
	// before the gateway kept it.
	Event string `json:"event,omitempty"`
	// Class is "temporary" or "permanent".
	Class     string     `json:"class"`
	Reason    string     `json:"reason,omitempty"`
	Message   string     `json:"message,omitempty"`
	Attempts  int        `json:"attempts"`
	FirstAt   time.Time  `json:"firstAttemptAt"`
	NextRetry *time.Time `json:"nextRetryAt,omitempty"`
}

// Name is the failing callback's id and, when known, the event whose call
// failed: "resize (update)".
func (f *Failure) Name() string {
	if f.Event == "" {
		return f.Callback
	}
	return f.Callback + " (" + f.Event + ")"
}

// Object is one object's line: its state and, when a callback failed, the
// most serious failure.
type Object struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	State     State  `json:"state"`
	// Failure is the failing callback that decided State; nil when none.
	Failure *Failure `json:"failure,omitempty"`
	// StateError says the state annotation could not be read (the gateway
	// then starts the object afresh).
	StateError string `json:"stateError,omitempty"`
}

// Key is namespace/name, or name for a cluster-scoped object.
func (o Object) Key() string {
	if o.Namespace == "" {
		return o.Name
	}
	return o.Namespace + "/" + o.Name
}

// decoded is an object's state as the engine reads it.
type decoded struct {
	st      *state.State
	foreign bool
	err     error
	digest  string // the object's essence now
}

func decode(op *spec.WebhookOperator, obj *unstructured.Unstructured) decoded {
	st, foreign, err := state.DecodeFor(obj.GetAnnotations()[op.StateAnnotation()], string(obj.GetUID()))
	if err != nil {
		st = &state.State{UID: string(obj.GetUID())}
	}
	return decoded{st: st, foreign: foreign, err: err, digest: essence.Digest(essence.Of(obj))}
}

// ClassifyObject is the line of one object watched by op, at now.
func ClassifyObject(op *spec.WebhookOperator, obj *unstructured.Unstructured, now time.Time) Object {
	return classify(op, obj, decode(op, obj), now)
}

// ClassifyState is ClassifyObject for a state already decoded (the
// gateway's own, at the end of a pass, before it is written).
func ClassifyState(op *spec.WebhookOperator, obj *unstructured.Unstructured, st *state.State, now time.Time) Object {
	return classify(op, obj, decoded{st: st, digest: essence.Digest(essence.Of(obj))}, now)
}

func classify(op *spec.WebhookOperator, obj *unstructured.Unstructured, d decoded, now time.Time) Object {
	o := Object{Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: string(obj.GetUID()), State: Settled}
	if d.err != nil {
		o.StateError = d.err.Error()
	}
	for _, id := range sortedIDs(d.st.Progress) {
		s, f := callbackState(d.st, id, d.digest, now)
		if o.Failure == nil || s.rank() < o.State.rank() {
			o.State, o.Failure = s, f
		}
	}
	switch {
	case obj.GetDeletionTimestamp() != nil && (holdsFinalizer(op, obj) || d.st.Round != nil && d.st.Round.Event == string(spec.EventDelete)):
		o.State = Deleting // the failure, if any, says why it takes long
	case o.Failure != nil:
	case obj.GetDeletionTimestamp() != nil:
		// Deleting, and not held by the operator (another controller's
		// finalizer keeps it): no pass calls anything more, whatever a
		// create or update round still owed.
	case d.st.Handled == "" || d.st.Round != nil || d.st.Handled != d.digest || len(d.st.Behind) > 0:
		// Behind with no round open: callbacks still owed the essence now
		// (a create round ended with some acting on another one), whose
		// update round the next pass starts.
		o.State = Pending
	}
	return o
}

// callbackState classifies callback id's retry records the way decide
// reads them: the most serious of its events' states, and that event's
// failure.
func callbackState(st *state.State, id, digest string, now time.Time) (s State, f *Failure) {
	for _, p := range st.Progress[id].Records() {
		until := decide.BackoffUntil(st, id, spec.Event(p.Event), digest, now)
		if ps, pf := progressState(id, p, until, digest); f == nil || ps.rank() < s.rank() {
			s, f = ps, pf
		}
	}
	return s, f
}

// progressState classifies one retry record: a permanent failure counts at
// the essence it happened at, but a timer's, which gives up one tick only
// (the timer fires on: it is failing); the call waits until the backoff
// that holds it back ends (its own, or another event's of the callback:
// until), which a change of the essence ends.
func progressState(id string, p *state.Progress, until time.Time, digest string) (State, *Failure) {
	f := &Failure{Callback: id, Event: p.Event, Class: "temporary", Reason: p.Reason, Message: p.Message, Attempts: p.Attempts, FirstAt: p.First}
	switch {
	case p.Failed && p.Digest == digest && p.Event != string(spec.EventTimer):
		f.Class = "permanent"
		return PermanentlyFailed, f
	case p.Failed:
		// At an older essence: called again. A timer's: that tick was
		// given up, the next comes at its interval.
		f.Class = "permanent"
	}
	if !until.IsZero() {
		f.NextRetry = &until
		return BackingOff, f
	}
	return Failing, f
}

func sortedIDs(m map[string]*state.Progress) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func holdsFinalizer(op *spec.WebhookOperator, obj *unstructured.Unstructured) bool {
	for _, f := range obj.GetFinalizers() {
		if f == op.Finalizer() {
			return true
		}
	}
	return false
}

// Less orders objects for a person: the most serious state first, then by
// namespace and name.
func Less(a, b Object) bool {
	if ra, rb := a.State.rank(), b.State.rank(); ra != rb {
		return ra < rb
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}
