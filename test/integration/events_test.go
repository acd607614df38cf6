package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// client-go's Event recorder lets 25 Events per source, object and type
// through, then one per 5 minutes. A handler's burst of Warnings must not
// use up the gateway's own: its permanent failure is still reported
// (contract.md), while the handler's Events stay bounded.
func TestHandlersWarningsDoNotStarveTheGatewaysOwn(t *testing.T) {
	const burst = 30 // more than client-go lets through per source and object
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "create" {
			var evs []any
			for i := range burst {
				evs = append(evs, map[string]any{"type": "Warning", "reason": fmt.Sprintf("Check%d", i), "message": "checked"})
			}
			return 200, map[string]any{"events": evs}
		}
		return 200, map[string]any{"error": map[string]any{"message": "cannot resize", "permanent": true}}
	})
	startGateway(t, operatorFor(t, "warnburst", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = nil
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, func() error { return stateHandled(t, ns, "example", "warnburst") })
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	eventually(t, 30*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "HandlerError") })
	// Events reach the API server in the order recorded: the handler's
	// came before HandlerError, so all that get through are there now.
	fromHandler := 0
	for _, e := range events(t, ns, "example") {
		if strings.HasPrefix(e.Reason, "Check") {
			fromHandler++
		}
	}
	if fromHandler == 0 || fromHandler >= burst {
		t.Errorf("%d of the handler's %d Warnings recorded: want some, but not more than client-go's burst", fromHandler, burst)
	}
}
