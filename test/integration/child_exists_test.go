package integration

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// usersConfigMap creates, as a user would with kubectl or Helm, a ConfigMap
// the gateway never made: no opgate labels, no owner.
func usersConfigMap(t *testing.T, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "users"}},
		Data:       map[string]string{"mine": "yes"},
	}
	out, err := kube(t).CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// leftAsTheUserMadeIt says whether the user's ConfigMap is as it was created.
func leftAsTheUserMadeIt(t *testing.T, before *corev1.ConfigMap) error {
	t.Helper()
	cm, err := getConfigMap(t, before.Namespace, before.Name)
	if err != nil {
		return err
	}
	if cm.UID != before.UID || cm.DeletionTimestamp != nil {
		return fmt.Errorf("the user's ConfigMap was deleted or re-created")
	}
	if !maps.Equal(cm.Data, before.Data) || !maps.Equal(cm.Labels, before.Labels) || len(cm.OwnerReferences) != 0 {
		return fmt.Errorf("the user's ConfigMap was taken over: data %v, labels %v, ownerReferences %v", cm.Data, cm.Labels, cm.OwnerReferences)
	}
	for _, f := range cm.ManagedFields {
		if f.Manager == "opgate" {
			return fmt.Errorf("the gateway applied to the user's ConfigMap (managedFields %s)", f.Manager)
		}
	}
	return nil
}

// TestAnExistingObjectTheGatewayDidNotMakeIsNotTakenOver: an answer names
// a child whose name a ConfigMap the user made (kubectl, Helm) already has.
// A forced apply would overwrite it, label and own it, and the parent would
// later prune it or the garbage collector delete it with the parent. The
// answer is refused (ChildExists, temporary) and the ConfigMap is left as it
// is, until the user labels it for the operator, which lets it adopt it.
func TestAnExistingObjectTheGatewayDidNotMakeIsNotTakenOver(t *testing.T) {
	ns := newNamespace(t)
	before := usersConfigMap(t, ns, "settings")
	h := newHandler(t, ok(map[string]any{"children": []any{configMap(ns, "settings")}}))
	startGateway(t, operatorFor(t, "takeover", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	w := createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, reconciled(t, ns, "example", "False/ChildExists", "opgate.dev/operator=takeover"))
	eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", "ChildExists") })
	if err := leftAsTheUserMadeIt(t, before); err != nil {
		t.Fatal(err)
	}

	// The user hands it over: the retried answer adopts it.
	patch := []byte(`{"metadata":{"labels":{"opgate.dev/operator":"takeover"}}}`)
	if _, err := kube(t).CoreV1().ConfigMaps(ns).Patch(context.Background(), "settings", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		cm, err := getConfigMap(t, ns, "settings")
		if err != nil {
			return err
		}
		if cm.UID != before.UID {
			return fmt.Errorf("re-created instead of adopted")
		}
		if ref := metav1.GetControllerOf(cm); ref == nil || ref.UID != w.GetUID() {
			return fmt.Errorf("not adopted by the parent: ownerReferences %v", cm.OwnerReferences)
		}
		if cm.Data["owner"] != "settings" {
			return fmt.Errorf("the answer's data not applied: %v", cm.Data)
		}
		return nil
	})
	eventually(t, 20*time.Second, reconciled(t, ns, "example", "True", ""))
}

// TestADeleteAnswerNamingAnObjectTheGatewayDidNotMakeLetsTheParentGo: a
// deleting parent's delete answer names a child whose name the user's own
// ConfigMap has. Failing for it would hold the parent Terminating for as
// long as the ConfigMap exists: it is left out (Normal Event ChildExists),
// untouched, and the parent goes.
func TestADeleteAnswerNamingAnObjectTheGatewayDidNotMakeLetsTheParentGo(t *testing.T) {
	ns := newNamespace(t)
	before := usersConfigMap(t, ns, "settings")
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventDelete {
			return 200, map[string]any{"children": []any{configMap(ns, "settings")}}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "delexists", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "delete", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil {
			return err
		}
		if !hasFinalizer(w, "opgate.dev/delexists") {
			return fmt.Errorf("no finalizer yet: %v", w.GetFinalizers())
		}
		return nil
	})
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "example")
	if err := hasEvent(t, ns, "example", "Normal", "ChildExists"); err != nil {
		t.Error(err)
	}
	if n := len(h.calls("delete")); n != 1 {
		t.Errorf("delete called %d times, want once: the child it cannot have is no failure of it", n)
	}
	if err := leftAsTheUserMadeIt(t, before); err != nil {
		t.Error(err)
	}
}

// TestANewChildIsReadOnceAndACachedOneNever: the check that a child the
// operator does not see is no one else's costs one read of it from the API
// server's watch cache (resourceVersion=0, no etcd read), before it is
// created; once the operator's cache holds it, the answers that keep it ask
// nothing more than the apply.
func TestANewChildIsReadOnceAndACachedOneNever(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{"children": []any{configMap(ns, "fresh")}}))
	requests := &requestLog{}
	path := fmt.Sprintf("/api/v1/namespaces/%s/configmaps/fresh", ns)
	var mu sync.Mutex
	var queries []string // of the reads of the child
	config := rest.CopyConfig(cfg)
	config.Wrap(requests.wrap)
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet && r.URL.Path == path {
				mu.Lock()
				queries = append(queries, r.URL.RawQuery)
				mu.Unlock()
			}
			return rt.RoundTrip(r)
		})
	})
	startGatewayWithConfig(t, config, runner.Options{}, operatorFor(t, "readonce", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.ResyncPeriod = &spec.Duration{Duration: time.Second}
		s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, func() error {
		if _, err := getConfigMap(t, ns, "fresh"); err != nil {
			return err
		}
		if n := len(h.calls("sync")); n < 4 {
			return fmt.Errorf("%d sync calls, want 4", n)
		}
		return nil
	})
	if got := requests.count(http.MethodGet, path); got != 1 {
		t.Errorf("the gateway read the child %d times over %d sync answers, want once (before creating it); its requests for it:\n%s",
			got, len(h.calls("sync")), strings.Join(requests.matching(path), "\n"))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, q := range queries {
		if q != "resourceVersion=0" {
			t.Errorf("the child read with query %q, want resourceVersion=0 (the API server's watch cache, no etcd read)", q)
		}
	}
}
