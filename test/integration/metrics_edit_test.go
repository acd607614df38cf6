package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/gateway/engine"
)

// An operator's counters are the process's: an edit of its spec restarts
// it but must not set them back to zero (a dashboard's increase() would
// show a reset at every edit, and a counter read once by hand would lie);
// only a removed operator's series go.
func TestAnOperatorsCountersOutliveAnEditOfItsSpecAndGoWithIt(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "handled"}}))
	_, reg := startGatewayWithMetrics(t) // no files: the registry of WebhookOperator objects
	createOperatorObject(t, operatorDoc("counted", widgetWatch(ns), h.URL, `[{id: create, events: [create]}]`))
	createWidget(t, ns, "example", 1)
	successes := func() (float64, bool) {
		return counterValue(t, reg, "opgate_callback_requests_total",
			map[string]string{"operator": "counted", "callback": "create", "event": "create", "outcome": "success"})
	}
	eventually(t, 20*time.Second, func() error {
		if n, _ := successes(); n != 1 {
			return fmt.Errorf("%v successful create calls counted, want 1", n)
		}
		return nil
	})

	gen := patchOperatorSpec(t, "counted", `{"spec":{"resyncPeriod":"5m"}}`)
	eventually(t, 20*time.Second, func() error {
		if c := condition(t, "counted", "Ready"); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != gen {
			return fmt.Errorf("Ready = %+v, want True at generation %d", c, gen)
		}
		return nil
	})
	if n, found := successes(); n != 1 {
		t.Errorf("after an edit of the spec: %v successful create calls counted (series there: %v), want still 1", n, found)
	}

	if err := dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), "counted", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if _, found := successes(); found {
			return fmt.Errorf("the removed operator's series is still exported")
		}
		return nil
	})
}

// counterValue reads the counter name with exactly labels from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}
