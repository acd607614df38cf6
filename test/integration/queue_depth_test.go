package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

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
