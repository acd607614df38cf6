package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/opgate/opgate/gateway/spec"
)

func TestOwnWritesTriggerNoHotLoop(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "synced"}}))
	startGateway(t, operatorFor(t, "quiet", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "example", "synced") })
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "example", "quiet") })
	// Sync begins in the pass after the create round recorded the object
	// as handled: wait for it, or the baseline may be taken before it.
	eventually(t, 10*time.Second, func() error { return called(h, "sync", 1) })
	settled := countFor(h, "sync", "example")

	// A second object goes through create and sync: by the time it has,
	// the first one's own writes have long been seen by the gateway.
	createWidget(t, ns, "witness", 1)
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "witness", "synced") })
	eventually(t, 10*time.Second, func() error { return stateHandled(t, ns, "witness", "quiet") })
	if n := countFor(h, "sync", "example"); n != settled {
		t.Errorf("sync of an unchanged object called %d more times: the gateway's own writes re-trigger it", n-settled)
	}
	if settled > 2 {
		t.Errorf("sync called %d times for one created object, want at most 2", settled)
	}
	if n := len(h.calls("create")); n != 2 {
		t.Errorf("create called %d times for 2 objects", n)
	}
}

func TestMetricsCountCallbacksAndApplies(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "ok"}}))
	_, reg := startGatewayWithMetrics(t, operatorFor(t, "metered", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "example", "ok") })
	eventually(t, 10*time.Second, func() error {
		for _, m := range []struct {
			name, labels string
		}{
			{"opgate_callback_requests_total", `operator="metered",callback="create",event="create",outcome="success"`},
			{"opgate_apply_total", `operator="metered",action="status",result="success"`},
			{"opgate_callback_duration_seconds_count", `operator="metered",callback="create",event="create"`},
		} {
			n, err := testutil.GatherAndCount(reg, m.name[:len(m.name)-len(suffix(m.name))])
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no %s{%s}", m.name, m.labels)
			}
		}
		return nil
	})
}

func suffix(name string) string {
	if len(name) > 6 && name[len(name)-6:] == "_count" {
		return "_count"
	}
	return ""
}

func countFor(h *handler, callback, name string) int {
	n := 0
	for _, r := range h.calls(callback) {
		if r.Object.GetName() == name {
			n++
		}
	}
	return n
}
