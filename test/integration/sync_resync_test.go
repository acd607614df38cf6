package integration

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
// callbacks waited for each other). That holds too when the failing
// answer writes a status (contract.md: an error's status is applied): the
// retry's own write is no change for the sibling. (Found by review rv42:
// steady was called once per retry.)
func TestAFailingSyncCallbacksRetriesDoNotCallItsSiblingAgain(t *testing.T) {
	for _, tt := range []struct {
		name string
		fail func(n int32) (int, any)
	}{
		{"a 503 without a body", func(int32) (int, any) { return 503, nil }},
		{"an error answer that writes its status", func(n int32) (int, any) {
			return 200, map[string]any{
				"error":  map[string]any{"message": "backend down"},
				"status": map[string]any{"message": fmt.Sprintf("backend down (attempt %d)", n)},
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			var failures atomic.Int32
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Callback == "flaky" {
					if n := failures.Add(1); n <= 4 {
						return tt.fail(n)
					}
				}
				return 200, nil
			})
			startGateway(t, operatorFor(t, "syncretry", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(200 * time.Millisecond)
				s.ResyncPeriod = &spec.Duration{Duration: time.Hour}
				s.Children = nil
				s.Callbacks = []spec.Callback{
					{ID: "steady", Events: []spec.Event{spec.EventSync}},
					{ID: "flaky", Events: []spec.Event{spec.EventSync}},
				}
			}))
			createWidget(t, ns, "w", 1)
			eventually(t, 30*time.Second, func() error { return called(h, "flaky", 5) })
			// The last retry's success may still be writing: a call of
			// steady it caused would come within a pass or two.
			if n := steadyFor(h, "steady", time.Second); n != 1 {
				t.Errorf("steady called %d times for one object and no change but flaky's 4 failures: want once", n)
			}
		})
	}
}

// steadyFor is how many calls callback has once a window passed in which
// none came: what a burst of passes left.
func steadyFor(h *handler, callback string, window time.Duration) int {
	n, since := len(h.calls(callback)), time.Now()
	for deadline := since.Add(10 * window); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		switch m := len(h.calls(callback)); {
		case m != n:
			n, since = m, time.Now()
		case time.Since(since) >= window:
			return n
		}
	}
	return n
}

// A sync call made alone (its requeueAfter, an owed call, a retry) takes in
// only its own writes: an update callback's status written earlier in its
// pass is a change of the parent, which the other sync callbacks are
// called for (contract.md: sync is called when anything about the parent
// changed). Before, the call alone took the pass's whole digest as its
// own, and other never saw the new status. (Found by review rv42.)
func TestASyncCallAloneLeavesAnEarlierWriteOfItsPassToTheOtherSyncCallbacks(t *testing.T) {
	for _, tt := range []struct {
		name string
		poll bool // main's sync answers requeueAfter: it comes alone after main's update
	}{
		{"after its backoff", false},
		{"polling with requeueAfter", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			var updates atomic.Int32
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				switch {
				case req.Callback == "main" && req.Event == callbacks.Event(spec.EventUpdate):
					if updates.Add(1) == 1 {
						return 503, nil // its backoff holds main's sync back too
					}
					return 200, map[string]any{"status": map[string]any{"message": "updated"}}
				case req.Callback == "main" && tt.poll:
					return 200, map[string]any{"requeueAfter": "200ms"}
				}
				return 200, nil
			})
			startGateway(t, operatorFor(t, "syncalone", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(2 * time.Second)
				s.ResyncPeriod = &spec.Duration{Duration: time.Hour}
				s.Children = nil
				s.Callbacks = []spec.Callback{
					{ID: "main", Events: []spec.Event{spec.EventUpdate, spec.EventSync}},
					{ID: "other", Events: []spec.Event{spec.EventSync}},
				}
			}))
			createWidget(t, ns, "w", 1)
			eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "w", "syncalone") })
			eventually(t, 20*time.Second, func() error { return called(h, "other", 1) })
			updateWidget(t, ns, "w", func(u *unstructured.Unstructured) { u.Object["spec"].(map[string]any)["size"] = int64(2) })
			eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "w", "updated") })
			eventually(t, 10*time.Second, func() error {
				for _, r := range h.calls("other") {
					if m, _, _ := unstructured.NestedString(r.Object.Object, "status", "message"); m == "updated" {
						return nil
					}
				}
				return fmt.Errorf("other never called with the parent's new status (message: updated), %d calls in all", len(h.calls("other")))
			})
		})
	}
}
