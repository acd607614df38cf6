package integration

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// contract.md: sync is called when resyncPeriod passed, and with several
// sync callbacks "pruning waits for a pass that calls them all (a change
// of the parent, its children or related objects, or resyncPeriod)". One
// sync callback that polls with requeueAfter shorter than resyncPeriod
// must not keep the other from its resync, and so pruning from ever
// coming without a change. (Found by review rv43.)
func TestARequeueingSyncCallbackDoesNotStarveTheOthersResyncNorPruning(t *testing.T) {
	ns := newNamespace(t)
	var gen atomic.Int32
	gen.Store(1)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Callback {
		case "sync-deploy":
			return 200, map[string]any{"children": []any{deployment("web", 1)}, "requeueAfter": "500ms"}
		case "sync-config":
			return 200, map[string]any{"children": []any{configMap(ns, fmt.Sprintf("cfg-%d", gen.Load()))}}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "resyncpoll", ns, h.URL, func(s *spec.OperatorSpec) {
		s.ResyncPeriod = &spec.Duration{Duration: 2 * time.Second}
		s.Children = []spec.ChildSpec{{APIVersion: "apps/v1", Kind: "Deployment"}, {APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{
			{ID: "sync-deploy", Events: []spec.Event{spec.EventSync}},
			{ID: "sync-config", Events: []spec.Event{spec.EventSync}},
		}
	}))
	createWidget(t, ns, "w", 1)
	eventually(t, 20*time.Second, func() error {
		if _, err := getConfigMap(t, ns, "cfg-1"); err != nil {
			return err
		}
		_, err := kube(t).AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
		return err
	})
	// The first passes settled: sync-deploy polls on its own (its
	// requeueAfter), not in passes the children's creation started.
	eventually(t, 20*time.Second, func() error {
		if n := callsAfterLast(h, "sync-config", "sync-deploy"); n < 2 {
			return fmt.Errorf("sync-deploy called %d times since sync-config last was; want 2", n)
		}
		return nil
	})
	// The config handler now wants cfg-2 instead of cfg-1: only a sync of
	// it (its resync, nothing changed) can tell.
	gen.Store(2)
	before := len(h.calls("sync-config"))
	deadline := time.Now().Add(12 * time.Second) // six resync periods
	for time.Now().Before(deadline) {
		_, err1 := getConfigMap(t, ns, "cfg-1")
		_, err2 := getConfigMap(t, ns, "cfg-2")
		if apierrors.IsNotFound(err1) && err2 == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("after 12s (resyncPeriod 2s): sync-config called %d more times, sync-deploy %d times in all; cfg-2 made: %v, cfg-1 pruned: %v",
		len(h.calls("sync-config"))-before, len(h.calls("sync-deploy")), existsCM(t, ns, "cfg-2"), !existsCM(t, ns, "cfg-1"))
}

func existsCM(t *testing.T, ns, name string) bool {
	_, err := getConfigMap(t, ns, name)
	return err == nil
}

// callsAfterLast counts the calls of callback of that arrived after the
// last call of callback after (all of them when after was never called).
func callsAfterLast(h *handler, after, of string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.requests {
		switch r.Callback {
		case after:
			n = 0
		case of:
			n++
		}
	}
	return n
}

// A sync callback's retries call it alone: the sibling that succeeded in
// the pass where it failed is not called again with each retry (a change
// reaches each sync callback once, as it did before several sync
// callbacks waited for each other).
func TestAFailingSyncCallbacksRetriesDoNotCallItsSiblingAgain(t *testing.T) {
	ns := newNamespace(t)
	var failures atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "flaky" && failures.Add(1) <= 3 {
			return 503, nil
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "syncretry", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(100 * time.Millisecond)
		s.Children = nil
		s.Callbacks = []spec.Callback{
			{ID: "steady", Events: []spec.Event{spec.EventSync}},
			{ID: "flaky", Events: []spec.Event{spec.EventSync}},
		}
	}))
	createWidget(t, ns, "w", 1)
	eventually(t, 30*time.Second, func() error { return called(h, "flaky", 4) })
	if n := len(h.calls("steady")); n != 1 {
		t.Errorf("steady called %d times for one object and no change while flaky failed 3 times: want once", n)
	}
}
