package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// When the gateway cannot delete a parent's label-owned children (here RBAC
// forbids deleting ConfigMaps), the finalizer stays and the deletion is
// retried; the delete callbacks, which succeeded, are not called again.
func TestFailingChildDeletionDoesNotRecallDeleteCallbacks(t *testing.T) {
	ns := newNamespace(t)
	shared := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventDelete {
			return 200, nil
		}
		return 200, map[string]any{"children": []any{configMap(shared, "kid")}}
	})
	c, grantDelete := noDeleteConfigMapsConfig(t)
	runGateway(t, c, runner.Options{Operators: []*spec.WebhookOperator{operatorFor(t, "kids", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	})}})
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error {
		_, err := getConfigMap(t, shared, "kid")
		return err
	})
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Several passes have failed to delete the child.
	eventually(t, 30*time.Second, func() error {
		for _, e := range events(t, ns, "example") {
			if e.Reason == "ChildrenNotDeleted" && e.Count >= 3 {
				return nil
			}
		}
		return fmt.Errorf("no ChildrenNotDeleted Warning seen three times yet")
	})
	grantDelete()
	waitWidgetGone(t, ns, "example")
	if n := len(h.calls("cleanup")); n != 1 {
		t.Errorf("cleanup called %d times, want once: it succeeded, only deleting the children failed", n)
	}
}

// noDeleteConfigMapsConfig returns cfg impersonating a user that may do
// everything the gateway needs except delete ConfigMaps, and a function
// that grants that too.
func noDeleteConfigMapsConfig(t *testing.T) (*rest.Config, func()) {
	t.Helper()
	all := []string{"*"}
	return impersonatedConfig(t, "opgate-nodelete", []rbacv1.PolicyRule{
		{APIGroups: []string{"test.opgate.dev", spec.Group, "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
		{APIGroups: []string{""}, Resources: []string{"events", "secrets", "namespaces"}, Verbs: all},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	}, 2)
}

// The parent's namespace is being deleted: the namespace controller deletes
// the child and marks the parent deleted (done by hand here: envtest runs
// no controllers). The delete callback answers the children it wants, as on
// every event. The API server refuses to create anything in a terminating
// namespace, for good: a child it refuses so during the delete round must
// not hold the finalizer, or the parent, and with it the namespace, stays
// Terminating for ever.
func TestDeleteAnswerInATerminatingNamespaceLetsTheParentGo(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		return 200, map[string]any{"children": []any{configMap(ns, "kid")}}
	})
	startGateway(t, operatorFor(t, "nsgone", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { _, err := getConfigMap(t, ns, "kid"); return err })
	ctx := context.Background()
	if err := kube(t).CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kube(t).CoreV1().ConfigMaps(ns).Delete(ctx, "kid", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(ctx, "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "example")
	if n := len(h.calls("cleanup")); n != 1 {
		t.Errorf("cleanup called %d times, want once: the refused child is no failure of it", n)
	}
	if _, err := getConfigMap(t, ns, "kid"); !apierrors.IsNotFound(err) {
		t.Errorf("child read: %v, want not found", err)
	}
}

// The same when the namespace is gone already: a delete answer naming a
// child in a namespace that does not exist (here never did) must not hold
// the parent; which of the two a namespace being deleted gives depends only
// on timing.
func TestDeleteAnswerNamingAMissingNamespaceLetsTheParentGo(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventDelete {
			return 200, map[string]any{"children": []any{configMap(ns+"-gone", "kid")}}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "nsmissing", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return called(h, "create", 1) })
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "example")
	if n := len(h.calls("cleanup")); n != 1 {
		t.Errorf("cleanup called %d times, want once: the child it cannot have is no failure of it", n)
	}
}

// A deleting parent whose delete callback answers a child another parent
// owns (one answer for every event, as a Metacontroller-style handler
// answers its desired children from its finalize hook too) can never apply
// it. The child is left out, as one whose namespace or kind is missing,
// rather than failing the delete callback for as long as the other parent
// exists and holding this one Terminating; the other parent keeps it.
func TestADeleteAnswerNamingAnotherParentsChildLetsTheParentGo(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		return 200, map[string]any{"children": []any{configMap(ns, "contested")}}
	})
	startGateway(t, operatorFor(t, "delforeign", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "delete", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	first := createWidget(t, ns, "first", 1)
	controlledByFirst := func() error {
		cm, err := getConfigMap(t, ns, "contested")
		if err != nil {
			return err
		}
		if ref := metav1.GetControllerOf(cm); ref == nil || ref.UID != first.GetUID() {
			return fmt.Errorf("not controlled by first: %v", cm.OwnerReferences)
		}
		return nil
	}
	eventually(t, 20*time.Second, controlledByFirst)
	createWidget(t, ns, "second", 1)
	eventually(t, 20*time.Second, func() error { return hasEvent(t, ns, "second", "Warning", "ChildOwnedElsewhere") })
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "second", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		got, err := getWidget(t, ns, "second")
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("second still there (finalizers %v)", got.GetFinalizers())
	})
	if len(h.calls("delete")) == 0 {
		t.Error("the delete callback was never called")
	}
	if err := controlledByFirst(); err != nil {
		t.Errorf("the other parent's child after the deletion: %v", err)
	}
}
