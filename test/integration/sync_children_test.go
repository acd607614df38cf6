package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// TestTwoSyncCallbacksEachAnsweringItsChildrenSettle: an operator with two
// sync callbacks, one answering the Deployment, the other the ConfigMap.
// Neither answer alone is the full desired set: taken as one, each pruned
// the other's child, and the two were created and deleted for ever.
func TestTwoSyncCallbacksEachAnsweringItsChildrenSettle(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Callback {
		case "sync-deploy":
			return 200, map[string]any{"children": []any{deployment("web", 1)}}
		case "sync-config":
			return 200, map[string]any{"children": []any{configMap(ns, "cfg")}}
		}
		return 200, nil
	})
	op := operatorFor(t, "twosync", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "apps/v1", Kind: "Deployment"}, {APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{
			{ID: "sync-deploy", Events: []spec.Event{spec.EventSync}},
			{ID: "sync-config", Events: []spec.Event{spec.EventSync}},
		}
	})
	startGateway(t, op)
	createWidget(t, ns, "w", 1)
	bothExist := func() error {
		if _, err := kube(t).AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("deployment web: %w", err)
		}
		if _, err := getConfigMap(t, ns, "cfg"); err != nil {
			return fmt.Errorf("configmap cfg: %w", err)
		}
		return nil
	}
	eventually(t, 20*time.Second, bothExist)
	// Settled: over a window in which nothing changes but the gateway's
	// own children, both stay and sync is not called again and again.
	n1 := len(h.calls("sync-deploy"))
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if err := bothExist(); err != nil {
			t.Fatalf("a child of one sync callback was deleted: %v", err)
		}
	}
	if n := len(h.calls("sync-deploy")) - n1; n > 3 {
		t.Errorf("sync called %d more times in 5s with nothing changed but its own children: the two sync answers prune each other", n)
	}
}

// TestTwoSyncCallbacksPruneOnlyWhenBothAnswerTheirChildren: with two sync
// callbacks, the desired set is what both answered in the pass; a child
// neither answered goes only when both answered with a children key.
// One failing, or answering without the key, prunes nothing: neither
// answer alone says what the other wants.
func TestTwoSyncCallbacksPruneOnlyWhenBothAnswerTheirChildren(t *testing.T) {
	for _, tt := range []struct {
		name string
		// config is sync-config's answer, the second sync callback's.
		config      func(ns string) (int, any)
		wantPruned  bool
		passOverMsg string // an Event that says the second answer was taken
	}{
		{
			name: "both answer with children",
			config: func(ns string) (int, any) {
				return 200, map[string]any{"children": []any{configMap(ns, "cfg")}, "events": []any{map[string]any{"reason": "ConfigSynced", "message": "synced"}}}
			},
			wantPruned: true, passOverMsg: "synced",
		},
		{
			name: "one answers without the children key",
			config: func(string) (int, any) {
				return 200, map[string]any{"events": []any{map[string]any{"reason": "ConfigSynced", "message": "synced"}}}
			},
			passOverMsg: "synced",
		},
		{
			name:        "one fails",
			config:      func(string) (int, any) { return 500, []byte("config store down") },
			passOverMsg: "callback sync-config (sync) failed",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				switch req.Callback {
				case "create":
					return 200, map[string]any{"children": []any{deployment("web", 1), configMap(ns, "cfg"), configMap(ns, "stale")}}
				case "sync-deploy":
					return 200, map[string]any{"children": []any{deployment("web", 1)}}
				case "sync-config":
					return tt.config(ns)
				}
				return 200, nil
			})
			startGateway(t, operatorFor(t, "twosyncprune", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Children = []spec.ChildSpec{{APIVersion: "apps/v1", Kind: "Deployment"}, {APIVersion: "v1", Kind: "ConfigMap"}}
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					// sync-deploy first: its answer is applied before
					// sync-config is called.
					{ID: "sync-deploy", Events: []spec.Event{spec.EventSync}},
					{ID: "sync-config", Events: []spec.Event{spec.EventSync}},
				}
			}))
			createWidget(t, ns, "w", 1)
			// The second answer was taken, and with it whatever the pass
			// prunes: its Event is recorded after.
			eventually(t, 20*time.Second, func() error { return eventSaying(t, ns, "w", tt.passOverMsg) })
			if _, err := kube(t).AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{}); err != nil {
				t.Errorf("deployment web, answered by sync-deploy: %v", err)
			}
			if _, err := getConfigMap(t, ns, "cfg"); err != nil {
				t.Errorf("configmap cfg, which sync-deploy did not answer: %v (pruned by one sync answer of two)", err)
			}
			_, err := getConfigMap(t, ns, "stale")
			switch {
			case tt.wantPruned:
				eventually(t, 10*time.Second, func() error {
					if _, err := getConfigMap(t, ns, "stale"); !apierrors.IsNotFound(err) {
						return fmt.Errorf("configmap stale, answered by neither sync callback, still there (err %v)", err)
					}
					return nil
				})
			case err != nil:
				t.Errorf("configmap stale: %v; nothing may be pruned unless every sync callback answered its children", err)
			}
		})
	}
}

// eventSaying is nil once an Event on ns/name has a message containing msg.
func eventSaying(t *testing.T, ns, name, msg string) error {
	for _, e := range events(t, ns, name) {
		if strings.Contains(e.Message, msg) {
			return nil
		}
	}
	return fmt.Errorf("no event on %s/%s saying %q", ns, name, msg)
}

// A sync callback held back by the backoff its other event's failure
// shares (contract.md: "while one of the callback's events waits for its
// next retry, its other events wait too ... until that retry is due") is
// owed what changed meanwhile: once the backoff ends it is called, alone,
// for a child changed during it, and once only. Before, the other sync
// callback's call in the change's pass recorded the change as synced, and
// the held-back one waited for resyncPeriod (an hour here). Alone, the
// held-back callback always got it (the digest waits for it). (Found by
// review rv42.)
func TestASyncCallbackHeldBackByItsUpdatesBackoffIsCalledForAChildChangedMeanwhile(t *testing.T) {
	for _, tt := range []struct {
		name    string
		watcher bool // a second sync callback, called in the change's pass
	}{
		{"beside another sync callback", true},
		{"alone", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			var updates atomic.Int32
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				switch {
				case req.Callback == "main" && req.Event == callbacks.Event(spec.EventUpdate):
					if updates.Add(1) == 1 {
						return 503, nil // a backoff of 3s, holding main's sync back too
					}
					return 200, nil
				case req.Callback == "main":
					return 200, map[string]any{"children": []any{configMap(ns, "cfg")}}
				}
				return 200, nil // watcher: no children key
			})
			cbs := []spec.Callback{{ID: "main", Events: []spec.Event{spec.EventUpdate, spec.EventSync}}}
			if tt.watcher {
				cbs = append(cbs, spec.Callback{ID: "watcher", Events: []spec.Event{spec.EventSync}})
			}
			startGateway(t, operatorFor(t, "heldsync", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(3 * time.Second)
				s.ResyncPeriod = &spec.Duration{Duration: time.Hour}
				s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
				s.Callbacks = cbs
			}))
			createWidget(t, ns, "w", 1)
			eventually(t, 20*time.Second, func() error { _, err := getConfigMap(t, ns, "cfg"); return err })
			steadyFor(h, "main", time.Second)
			updateWidget(t, ns, "w", func(u *unstructured.Unstructured) { u.Object["spec"].(map[string]any)["size"] = int64(2) })
			eventually(t, 20*time.Second, func() error {
				if updates.Load() < 1 {
					return fmt.Errorf("main's update not called")
				}
				return nil
			})
			// Within main's backoff, someone changes the child.
			if _, err := kube(t).CoreV1().ConfigMaps(ns).Patch(context.Background(), "cfg", types.MergePatchType,
				[]byte(`{"metadata":{"annotations":{"touched":"yes"}}}`), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			if tt.watcher {
				eventually(t, 10*time.Second, func() error { return syncedSeeingTouched(h, "watcher", 1) })
				if updates.Load() != 1 {
					t.Fatalf("setup: the child change's pass came after main's backoff (%d updates)", updates.Load())
				}
			}
			eventually(t, 20*time.Second, func() error { return syncedSeeingTouched(h, "main", 1) })
			if updates.Load() < 2 {
				t.Errorf("main's sync called for the change before its update's retry (%d updates): it was not held back", updates.Load())
			}
			// One call per change, and no loop: a window passes without
			// another call of either seeing it.
			steadyFor(h, "main", time.Second)
			for _, c := range cbs {
				if got := countSeeingTouched(h, c.ID); got != 1 {
					t.Errorf("%s's sync called %d times for the child's change, want once", c.ID, got)
				}
			}
		})
	}
}

// countSeeingTouched counts callback's sync calls whose child cfg carries
// the annotation touched: yes.
func countSeeingTouched(h *handler, callback string) int {
	n := 0
	for _, r := range h.calls(callback) {
		if r.Event != callbacks.Event(spec.EventSync) {
			continue
		}
		if cm := r.Children["v1/ConfigMap"]["cfg"]; cm != nil && cm.GetAnnotations()["touched"] == "yes" {
			n++
		}
	}
	return n
}

// syncedSeeingTouched is nil once callback's sync was called at least n
// times with the changed child (countSeeingTouched).
func syncedSeeingTouched(h *handler, callback string, n int) error {
	if got := countSeeingTouched(h, callback); got < n {
		return fmt.Errorf("%s's sync called %d times with the changed child, want %d", callback, got, n)
	}
	return nil
}
