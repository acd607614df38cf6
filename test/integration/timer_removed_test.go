package integration

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// A failed timer record does not outlive the timer: once the operator no
// longer calls callback tick on timer for the object (the event removed
// from it, the id kept; or its when.labels no longer matching), the
// record of its last tick's failure goes, and the object reads
// reconciled, whether it changes or not.
func TestAFailedTickNoLongerCalledLeavesNoFailureBehind(t *testing.T) {
	for _, tt := range []struct {
		name   string
		next   spec.Callback
		update bool
	}{
		{"timer removed, object updated", spec.Callback{ID: "tick", Events: []spec.Event{spec.EventUpdate}}, true},
		{"timer removed", spec.Callback{ID: "tick", Events: []spec.Event{spec.EventUpdate}}, false},
		{"when.labels no longer match", spec.Callback{ID: "tick", Events: []spec.Event{spec.EventTimer},
			Interval: &spec.Duration{Duration: 200 * time.Millisecond}, When: &spec.When{Labels: map[string]string{"tier": "gold"}}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Event == callbacks.Event(spec.EventTimer) {
					return 503, map[string]any{"error": map[string]any{"message": "restarting"}}
				}
				return 200, nil
			})
			one := 1
			stop := startGateway(t, operatorFor(t, "tickgone", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Status = &spec.StatusSpec{Conditions: true}
				s.Callbacks = []spec.Callback{{
					ID: "tick", Events: []spec.Event{spec.EventTimer},
					Interval: &spec.Duration{Duration: 200 * time.Millisecond},
					Retry:    &spec.RetrySpec{MaxAttempts: &one},
				}}
			}))
			createWidget(t, ns, "example", 1)
			eventually(t, 20*time.Second, func() error { return stateSettled(t, ns, "example", "tickgone") })
			eventually(t, 20*time.Second, reconciledFalseNaming(t, ns, "example", "tick"))
			stop()

			// The next version of the operator.
			startGateway(t, operatorFor(t, "tickgone", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Status = &spec.StatusSpec{Conditions: true}
				s.Callbacks = []spec.Callback{tt.next}
			}))
			if tt.update {
				before := len(h.calls("tick"))
				updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
					_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
				})
				eventually(t, 20*time.Second, func() error { return called(h, "tick", before+1) })
			}
			eventually(t, 20*time.Second, reconciled(t, ns, "example", "True", ""))
		})
	}
}
