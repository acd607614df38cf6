package decide

import (
	"testing"

	"github.com/opgate/opgate/gateway/spec"
)

// StillCalls says whether a retry record's call is still made, so that one
// the operator no longer makes (an edit took the event from the callback,
// removed the callback, or its when filter no longer matches a sync or a
// timer) ends rather than count the object failing for ever.
func TestStillCallsSaysWhetherTheOperatorStillMakesACall(t *testing.T) {
	gold := &spec.When{Labels: map[string]string{"tier": "gold"}}
	op := &spec.WebhookOperator{Spec: spec.OperatorSpec{Callbacks: []spec.Callback{
		{ID: "tick", Events: []spec.Event{spec.EventUpdate}},
		{ID: "gold", Events: []spec.Event{spec.EventTimer, spec.EventSync, spec.EventUpdate}, When: gold},
		{ID: "all", Events: []spec.Event{spec.EventTimer, spec.EventSync, spec.EventDelete}},
	}}}
	for _, tt := range []struct {
		name   string
		id     string
		event  spec.Event
		labels map[string]string
		want   bool
	}{
		{"an event the callback handles", "tick", spec.EventUpdate, nil, true},
		{"an event taken from the callback", "tick", spec.EventTimer, nil, false},
		{"a callback removed", "gone", spec.EventTimer, nil, false},
		{"a timer whose when.labels no longer match", "gold", spec.EventTimer, nil, false},
		{"a sync whose when.labels no longer match", "gold", spec.EventSync, nil, false},
		{"a timer whose when.labels match", "gold", spec.EventTimer, map[string]string{"tier": "gold"}, true},
		{"an update, whatever its labels (its round decides)", "gold", spec.EventUpdate, nil, true},
		{"a timer without filter", "all", spec.EventTimer, nil, true},
		{"a delete", "all", spec.EventDelete, nil, true},
		{"a record written before events were kept", "tick", "", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := StillCalls(op, tt.id, tt.event, object(3, tt.labels)); got != tt.want {
				t.Errorf("StillCalls = %v, want %v", got, tt.want)
			}
		})
	}
}

// FilteredOut names the smallest failing when.labels or when.annotations
// key, whatever order Go's map iteration takes: `gateway call` prints it,
// and a message naming another key on every run reads as a flapping rule.
func TestFilteredOutNamesTheSmallestFailingKey(t *testing.T) {
	for _, tt := range []struct {
		name        string
		when        spec.When
		labels      map[string]string
		annotations map[string]string
		want        string
	}{
		{
			name:   "several values differ",
			when:   spec.When{Labels: map[string]string{"e": "1", "b": "1", "d": "1", "c": "1", "f": "1", "g": "1", "h": "1"}},
			labels: map[string]string{"e": "2", "b": "2", "d": "2", "c": "2", "f": "2", "g": "2", "h": "2"},
			want:   "when.labels b: 1",
		},
		{
			name:   "a smaller key matches, larger ones fail in every way",
			when:   spec.When{Labels: map[string]string{"a": "1", "m": spec.FilterPresent, "n": spec.FilterAbsent, "o": "x", "p": "y", "q": "z"}},
			labels: map[string]string{"a": "1", "n": "set"},
			want:   "when.labels m: present",
		},
		{
			name:        "labels match, several annotations fail",
			when:        spec.When{Labels: map[string]string{"tier": "gold"}, Annotations: map[string]string{"z": spec.FilterPresent, "y": spec.FilterPresent, "x": spec.FilterPresent, "w": spec.FilterPresent, "v": spec.FilterPresent}},
			labels:      map[string]string{"tier": "gold"},
			annotations: map[string]string{"z": "1"},
			want:        "when.annotations v: present",
		},
		{
			name:   "everything matches",
			when:   spec.When{Labels: map[string]string{"a": "1", "b": spec.FilterPresent, "c": spec.FilterAbsent}},
			labels: map[string]string{"a": "1", "b": ""},
			want:   "",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			when := tt.when
			cb := spec.Callback{ID: "cb", Events: []spec.Event{spec.EventSync}, When: &when}
			obj := object(1, tt.labels)
			obj.SetAnnotations(tt.annotations)
			// Map iteration starts at a random place: many runs would show
			// a key that depends on it.
			for range 200 {
				if got := FilteredOut(cb, obj, spec.EventSync, nil, nil); got != tt.want {
					t.Fatalf("FilteredOut = %q, want %q", got, tt.want)
				}
			}
		})
	}
}
