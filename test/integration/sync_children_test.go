package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
