package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/metrics/metricstest"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// While the workers are busy (a slow handler) objects wait in the queue:
// workqueue_depth{name=OPERATOR} says how many, and no opgate_queue_depth
// series, set only when a worker took an item, lags behind it.
func TestQueueDepthFollowsTheQueueWhileWorkersAreBusy(t *testing.T) {
	ns := newNamespace(t)
	release := make(chan struct{})
	var once sync.Once
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		<-release
		return 200, map[string]any{}
	})
	// After the handler's server is closed (cleanups run last first): its
	// calls return before it waits for them.
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	op := operatorFor(t, "qdepth", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	_, reg := startGatewayWithOptions(t, runner.Options{Workers: 1}, op)
	createWidget(t, ns, "w0", 1)
	eventually(t, 30*time.Second, func() error { return called(h, "create", 1) })
	for i := 1; i <= 5; i++ {
		createWidget(t, ns, fmt.Sprintf("w%d", i), 1)
	}
	value := func(family string, labels map[string]string) (float64, bool) {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == family {
				return metricstest.Value(f, labels)
			}
		}
		return 0, false
	}
	eventually(t, 30*time.Second, func() error {
		if v, _ := value("workqueue_depth", map[string]string{"name": "qdepth"}); v != 5 {
			return fmt.Errorf("workqueue_depth{name=qdepth} = %v, want 5", v)
		}
		return nil
	})
	if v, ok := value("opgate_queue_depth", map[string]string{"operator": "qdepth"}); ok {
		t.Errorf("opgate_queue_depth{operator=qdepth} = %v while 5 objects wait: a second, lagging gauge of the queue", v)
	}
}

// queueDepth is workqueue_depth{name=queue} as reg gathers it; the series
// is the process's, shared by every queue of that name.
func queueDepth(t *testing.T, reg *prometheus.Registry, queue string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "workqueue_depth" {
			v, _ := metricstest.Value(f, map[string]string{"name": queue})
			return v
		}
	}
	return 0
}

// An operator stopped before its caches all synced (a child kind
// forbidden, then the gateway stopped) never started its workers: the
// objects its parent informer queued were never taken. They must stop
// counting in workqueue_depth{name=OPERATOR} when it stops: the series is
// shared by name with the operator's next queue, which would read that
// much too high for ever.
func TestQueueDepthDropsWhenAnOperatorStopsBeforeItsCachesSynced(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	const name = "qdepth-unsynced"
	op := operatorFor(t, name, ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	for i := range 3 {
		createWidget(t, ns, fmt.Sprintf("w%d", i), 1)
	}
	limited, _ := limitedConfig(t) // no list or watch of Deployments, the child kind
	stop, reg := startGatewayWithConfig(t, limited, runner.Options{}, op)
	eventually(t, 30*time.Second, func() error {
		if d := queueDepth(t, reg, name); d != 3 {
			return fmt.Errorf("workqueue_depth{name=%s} = %v while its caches wait, want the 3 Widgets queued", name, d)
		}
		return nil
	})
	if n := len(h.calls("create")); n != 0 {
		t.Fatalf("create called %d times before the caches synced", n)
	}
	stop()
	if d := queueDepth(t, reg, name); d != 0 {
		t.Errorf("after the gateway stopped: workqueue_depth{name=%s} = %v, want 0: no queue holds anything", name, d)
	}

	// The operator runs again, allowed now: its next queue's depth counts
	// only what waits in it.
	_, reg = startGatewayWithOptions(t, runner.Options{}, op)
	eventually(t, 30*time.Second, func() error { return called(h, "create", 3) })
	eventually(t, 30*time.Second, func() error {
		if d := queueDepth(t, reg, name); d != 0 {
			return fmt.Errorf("the 3 Widgets handled, workqueue_depth{name=%s} = %v, want 0", name, d)
		}
		return nil
	})
}
