package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// A retry record of a call the operator no longer makes ends, once a round
// ends (or on a process's first pass) and on a success of the callback,
// also a failure at the essence now: an operator edit that took timer from
// callback tick (the id kept), or a when.labels the object no longer
// matches, left its failed tick recorded for ever before, the object
// reading Reconciled=False naming a timer that no longer fires. A call
// still made keeps its record.
func TestARecordOfACallTheOperatorNoLongerMakesEnds(t *testing.T) {
	const now = "e1"
	gold := &spec.When{Labels: map[string]string{"tier": "gold"}}
	for _, tt := range []struct {
		name     string
		cb       spec.Callback // callback tick as the operator has it now
		event    spec.Event    // the record's
		failed   bool          // permanently, at the essence now
		wantKept bool
	}{
		{"a failed tick, timer taken from the callback", spec.Callback{Events: []spec.Event{spec.EventUpdate}}, spec.EventTimer, true, false},
		{"a failed tick, when.labels no longer match", spec.Callback{Events: []spec.Event{spec.EventTimer, spec.EventUpdate}, When: gold}, spec.EventTimer, true, false},
		{"a sync's retry, when.labels no longer match", spec.Callback{Events: []spec.Event{spec.EventSync, spec.EventUpdate}, When: gold}, spec.EventSync, false, false},
		{"an update failed at the essence now, update taken from the callback", spec.Callback{Events: []spec.Event{spec.EventSync}}, spec.EventUpdate, true, false},
		{"a failed tick of a timer still firing", spec.Callback{Events: []spec.Event{spec.EventTimer, spec.EventUpdate}}, spec.EventTimer, true, true},
		{"an update failed at the essence now, still handled", spec.Callback{Events: []spec.Event{spec.EventUpdate, spec.EventSync}}, spec.EventUpdate, true, true},
	} {
		for _, end := range []string{"round ended", "another event succeeded"} {
			t.Run(tt.name+"/"+end, func(t *testing.T) {
				cb := tt.cb
				cb.ID = "tick"
				op := &spec.WebhookOperator{Spec: spec.OperatorSpec{Callbacks: []spec.Callback{cb}}}
				pr := &state.Progress{Event: string(tt.event), Attempts: 1, Digest: now, Failed: tt.failed}
				st := &state.State{Handled: now, Progress: map[string]*state.Progress{"tick": pr}}
				obj := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"namespace": "ns", "name": "w"}}}
				p := &pass{obj: obj, st: st, mem: &objectMemory{}, plan: decide.Plan{EssenceDigest: now}}
				if end == "round ended" {
					endUnowedRecords(op, p)
				} else {
					other := spec.EventUpdate
					if tt.event == spec.EventUpdate {
						other = spec.EventSync
					}
					endRecord(op, p, "tick", string(other))
				}
				if kept := st.ProgressFor("tick", string(tt.event)) != nil; kept != tt.wantKept {
					t.Errorf("record kept = %v, want %v", kept, tt.wantKept)
				}
			})
		}
	}
}
