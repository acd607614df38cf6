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
