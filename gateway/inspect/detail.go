package inspect

import (
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// Detail is one object's whole state for one operator.
type Detail struct {
	Object
	Operator        string     `json:"operator"`
	Generation      int64      `json:"generation"`
	ResourceVersion string     `json:"resourceVersion"`
	DeletingSince   *time.Time `json:"deletingSince,omitempty"`
	// StateAnnotation is the annotation's key; StateForeign says it was
	// written for another object (the gateway treats this one as new).
	StateAnnotation string     `json:"stateAnnotation"`
	StateForeign    bool       `json:"stateForeign,omitempty"`
	Essence         Essence    `json:"essence"`
	Round           *Round     `json:"round,omitempty"`
	Callbacks       []Callback `json:"callbacks"`
	Finalizer       Finalizer  `json:"finalizer"`
	Reconcile       Reconcile  `json:"reconcileRequest"`
	Events          []Event    `json:"events,omitempty"`
}

// Essence is what the state says of the handled essence.
type Essence struct {
	// Handled is the digest of the last handled essence ("" never handled).
	Handled string `json:"handledDigest,omitempty"`
	// Current is the digest of the object's essence now; it differs from
	// Handled while a change waits to be handled.
	Current string `json:"currentDigest"`
	// StoredBytes is the size of the essence as kept (compressed when large) for the next
	// update's old/diff; 0 when it was not kept.
	StoredBytes int        `json:"storedBytes"`
	HandledAt   *time.Time `json:"handledAt,omitempty"`
	// Age is how long ago it was handled, rounded to the second.
	Age string `json:"age,omitempty"`
}

// Round is the round in progress, as the gateway's next pass takes it up
// (an update round whose essence changed since it began starts over).
type Round struct {
	Event string   `json:"event"`
	Done  []string `json:"done"`
	// Waiting are the callbacks the round still calls, as the gateway
	// counts them: not the others of its event, which owe its essence
	// nothing (filtered out by when, failed for good at it, or, in a round
	// of a change taken back, never acted on the change).
	Waiting []string `json:"waiting"`
	// Owed are the waiting update callbacks that acted on a change since
	// taken back: each is called with the essence now, and the essence it
	// acted on as old.
	Owed []Owed `json:"owed,omitempty"`
}

// Owed is an update callback owed the essence now after acting on a
// change that was taken back.
type Owed struct {
	Callback string `json:"callback"`
	// ActedOn is the digest of the essence it acted on (its old).
	ActedOn string `json:"actedOnDigest"`
}

// Callback is one callback's progress on the object.
type Callback struct {
	ID     string   `json:"id"`
	Events []string `json:"events"`
	// State is done (in the open round), waiting (the open round still
	// calls it), failing, backing_off, permanently_failed, or idle.
	State   string   `json:"state"`
	Failure *Failure `json:"failure,omitempty"`
	// NextFire is a timer's next tick; only the running gateway knows it
	// (timers live in its memory), so it is unset unless Detail was given
	// the gateway's memory of the object.
	NextFire *time.Time `json:"nextFireAt,omitempty"`
	Interval string     `json:"interval,omitempty"`
}

// Finalizer is the operator's finalizer on the object.
type Finalizer struct {
	Name string `json:"name"`
	Held bool   `json:"held"`
	// ReleaseRequested: opgate.dev/release-finalizer=true is set.
	ReleaseRequested bool `json:"releaseRequested,omitempty"`
}

// Reconcile is the reconcile-on-request annotation and what the gateway
// did with it. Requested is the annotation's value, cut at
// requestShown characters (it is free text of any size); Handled reports
// whether the gateway acted on it already, or it is still to come.
type Reconcile struct {
	Requested string `json:"requested,omitempty"`
	Handled   bool   `json:"handled,omitempty"`
}

// requestShown bounds the request value shown: a timestamp fits whole.
const requestShown = 64

func reconcileOf(obj *unstructured.Unstructured, st *state.State) Reconcile {
	v := obj.GetAnnotations()[ReconcileRequestAnnotation]
	if v == "" {
		return Reconcile{}
	}
	shown := v
	if r := []rune(v); len(r) > requestShown {
		shown = string(r[:requestShown]) + "…"
	}
	return Reconcile{Requested: shown, Handled: st.RequestHandled(v)}
}

// Event is a Kubernetes Event about the object.
type Event struct {
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Count   int32     `json:"count,omitempty"`
	Last    time.Time `json:"lastSeen"`
}

// Describe is the whole state of obj for op at now. mem, when the caller
// is the running gateway, adds what only it knows (timers' next tick).
func Describe(op *spec.WebhookOperator, obj *unstructured.Unstructured, mem *decide.Memory, now time.Time) Detail {
	d := decode(op, obj)
	out := Detail{
		Object: classify(op, obj, d, now), Operator: op.Name,
		Generation: obj.GetGeneration(), ResourceVersion: obj.GetResourceVersion(),
		StateAnnotation: op.StateAnnotation(), StateForeign: d.foreign,
		Essence:   Essence{Handled: d.st.Handled, Current: d.digest, StoredBytes: len(d.st.Essence)},
		Finalizer: Finalizer{Name: op.Finalizer(), Held: holdsFinalizer(op, obj), ReleaseRequested: obj.GetAnnotations()[decide.ReleaseAnnotation] == "true"},
		Reconcile: reconcileOf(obj, d.st),
	}
	if ts := obj.GetDeletionTimestamp(); ts != nil {
		t := ts.Time
		out.DeletingSince = &t
	}
	if at := d.st.HandledAt; at != nil {
		out.Essence.HandledAt = at
		out.Essence.Age = now.Sub(*at).Round(time.Second).String()
	}
	out.Round = describeRound(decide.Input{Operator: op, Object: obj, State: d.st, Memory: mem,
		HoldsFinalizer: out.Finalizer.Held, Now: now})
	for _, cb := range op.Spec.Callbacks {
		out.Callbacks = append(out.Callbacks, describeCallback(cb, d, out.Round, mem, now))
	}
	return out
}

// describeRound is the open round as the gateway takes it up
// (decide.OpenRound): it waits for the callbacks it calls, not for every
// callback of its event.
func describeRound(in decide.Input) *Round {
	r, calls, behind := decide.OpenRound(in)
	if r == nil {
		return nil
	}
	out := &Round{Event: r.Event, Done: append([]string{}, r.Done...), Waiting: []string{}}
	for _, id := range calls {
		if r.IsDone(id) {
			continue
		}
		out.Waiting = append(out.Waiting, id)
		if seen := state.SeenBy(behind, id); seen != nil && r.Event == string(spec.EventUpdate) {
			out.Owed = append(out.Owed, Owed{Callback: id, ActedOn: seen.Digest})
		}
	}
	return out
}

func describeCallback(cb spec.Callback, d decoded, r *Round, mem *decide.Memory, now time.Time) Callback {
	c := Callback{ID: cb.ID, State: "idle"}
	for _, e := range cb.Events {
		c.Events = append(c.Events, string(e))
	}
	if cb.Interval != nil {
		c.Interval = cb.Interval.String()
	}
	if mem != nil {
		if t, ok := mem.TimerNext[cb.ID]; ok {
			c.NextFire = &t
		}
	}
	switch {
	case r == nil || !cb.Handles(spec.Event(r.Event)):
	case slices.Contains(r.Waiting, cb.ID):
		c.State = "waiting"
	case slices.Contains(r.Done, cb.ID):
		c.State = "done"
	}
	if d.st.Progress[cb.ID] != nil {
		s, f := callbackState(d.st, cb.ID, d.digest, now)
		c.State, c.Failure = string(s), f
	}
	return c
}

// EventsOf turns the Events about an object into the detail's, the last
// n, newest first.
func EventsOf(events []corev1.Event, n int) []Event {
	out := make([]Event, 0, len(events))
	for _, e := range events {
		last := e.LastTimestamp.Time
		if last.IsZero() {
			last = e.EventTime.Time
		}
		if last.IsZero() {
			last = e.CreationTimestamp.Time
		}
		out = append(out, Event{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count, Last: last})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return slices.Clip(out)
}
