package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/opgate/opgate/gateway/spec"
)

// Events are handed to client-go's recorder, which writes them later, on
// its own (aggregated, rate-limited): the gateway counts what it handed
// over, handlers' Events and its own Warnings alike, as
// opgate_events_total{type}, and claims no write result for them in
// opgate_apply_total.
func TestEventsHandedToTheRecorderAreCountedByType(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"events": []any{map[string]any{"reason": "Made", "message": "made it"}}}))
	_, reg := startGatewayWithMetrics(t, operatorFor(t, "evcount", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, func() error {
		if n := counter(t, reg, "opgate_events_total", map[string]string{"operator": "evcount", "type": "Normal"}); n != 1 {
			return fmt.Errorf("opgate_events_total{type=Normal} = %v, want 1 (the handler's Event)", n)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error { return hasEvent(t, ns, "example", "Normal", "Made") })
	if n := counter(t, reg, "opgate_apply_total", map[string]string{"operator": "evcount", "action": "event"}); n != 0 {
		t.Errorf("opgate_apply_total{action=event} = %v: a write result the gateway does not know", n)
	}
}
