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

// An answer the gateway refuses whole applies nothing (contract.md):
// its Events, which may announce what it did ("ConfigMap made"), are not
// recorded either. Those of an applied answer, and of one that reports an
// error (documented), are.
func TestEventsOfARefusedAnswerAreNotRecorded(t *testing.T) {
	announced := map[string]any{"type": "Normal", "reason": "Announced", "message": "ConfigMap made"}
	for _, tt := range []struct {
		name    string
		answer  func(ns string) map[string]any // for the object "second"
		first   bool                           // a parent "first" takes the ConfigMap "shared" before
		byUser  bool                           // a user made the ConfigMap "settings" before
		refusal string                         // the Warning of the refusal; "": the answer is not refused
	}{
		{"applied", func(ns string) map[string]any {
			return map[string]any{"children": []any{configMap(ns, "made")}, "events": []any{announced}}
		}, false, false, ""},
		{"reporting an error", func(string) map[string]any {
			return map[string]any{"error": map[string]any{"message": "not yet"}, "events": []any{announced}}
		}, false, false, ""},
		{"child of an undeclared kind", func(string) map[string]any {
			return map[string]any{"children": []any{deployment("undeclared", 1)}, "events": []any{announced}}
		}, false, false, "ChildRefused"},
		{"status of the wrong type", func(string) map[string]any {
			return map[string]any{"status": map[string]any{"message": int64(5)}, "events": []any{announced}}
		}, false, false, "InvalidStatus"},
		{"child owned elsewhere", func(ns string) map[string]any {
			return map[string]any{"children": []any{configMap(ns, "shared")}, "events": []any{announced}}
		}, true, false, "ChildOwnedElsewhere"},
		{"child the gateway did not make", func(ns string) map[string]any {
			return map[string]any{"children": []any{configMap(ns, "settings")}, "events": []any{announced}}
		}, false, true, "ChildExists"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Object.GetName() == "first" {
					return 200, map[string]any{"children": []any{configMap(ns, "shared")}}
				}
				return 200, tt.answer(ns)
			})
			startGateway(t, operatorFor(t, "refusedevents", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
				s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
			}))
			if tt.byUser {
				usersConfigMap(t, ns, "settings")
			}
			if tt.first {
				createWidget(t, ns, "first", 1)
				eventually(t, 20*time.Second, func() error { _, err := getConfigMap(t, ns, "shared"); return err })
			}
			createWidget(t, ns, "second", 1)
			if tt.refusal == "" {
				eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "second", "Normal", "Announced") })
				return
			}
			eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "second", "Warning", tt.refusal) })
			// One broadcaster records both in order: an Event of the answer,
			// recorded before its refusal, would be there by now.
			if hasEvent(t, ns, "second", "Normal", "Announced") == nil {
				t.Errorf("the answer was refused whole (%s), yet its Event Announced is on the object", tt.refusal)
			}
		})
	}
}
