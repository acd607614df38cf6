package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// TestARelabelledParentIsWarnedThatItsCrossNamespaceChildrenStayBehind: a
// parent that leaves the selection (label changed) is let go, and its
// cross-namespace child, which only the gateway would delete, stays
// behind when the parent is then deleted. The gateway cannot delete it at
// let-go (the parent still exists), so it says so on the parent: a
// Warning Event with how many children stay and how to delete them.
func TestARelabelledParentIsWarnedThatItsCrossNamespaceChildrenStayBehind(t *testing.T) {
	ns, shared := newNamespace(t), newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventCreate {
			// The one beside it is owned by reference: the garbage
			// collector deletes it with the parent, it is not left behind.
			return 200, map[string]any{"children": []any{configMap(shared, "of-w"), configMap(ns, "beside-w")}}
		}
		return 200, nil
	})
	op := operatorFor(t, "relabelleak", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	startGateway(t, op)
	w := widget(ns, "w", 1)
	w.SetLabels(map[string]string{"team": "a"})
	created, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error { _, err := getConfigMap(t, shared, "of-w"); return err })
	eventually(t, 20*time.Second, func() error { _, err := getConfigMap(t, ns, "beside-w"); return err })
	updateWidget(t, ns, "w", func(u *unstructured.Unstructured) { u.SetLabels(map[string]string{"team": "b"}) })
	eventually(t, 20*time.Second, func() error {
		got, err := getWidget(t, ns, "w")
		if err != nil {
			return err
		}
		if hasFinalizer(got, "opgate.dev/relabelleak") {
			return fmt.Errorf("finalizer still held")
		}
		return nil
	})
	recipe := "kubectl delete configmaps -A -l opgate.dev/operator=relabelleak,opgate.dev/owner-uid=" + string(created.GetUID())
	eventually(t, 20*time.Second, func() error {
		for _, e := range events(t, ns, "w") {
			if e.Type == "Warning" && e.Reason == "ChildrenLeftBehind" {
				if !strings.Contains(e.Message, "1 child") || !strings.Contains(e.Message, recipe) {
					return fmt.Errorf("event ChildrenLeftBehind does not name 1 child and %q: %s", recipe, e.Message)
				}
				return nil
			}
		}
		return fmt.Errorf("no Warning ChildrenLeftBehind on %s/w", ns)
	})
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "w", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWidgetGone(t, ns, "w")
	if _, err := getConfigMap(t, shared, "of-w"); err != nil {
		t.Errorf("the child of a parent let go should stay behind (the gateway no longer answers for it): %v", err)
	}
}

// A parent watched by two operators of the gateway leaves operator A's
// selection but stays in B's. A's Warning ChildrenLeftBehind gives a
// kubectl delete whose selector names only the children A left behind,
// never those B still manages for the same parent. (Found by review rv44.)
func TestChildrenLeftBehindRecipeSparesAnotherOperatorsLiveChildren(t *testing.T) {
	ns, shared := newNamespace(t), newNamespace(t)
	ha := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventCreate {
			return 200, map[string]any{"children": []any{configMap(shared, "of-a")}}
		}
		return 200, nil
	})
	hb := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventCreate {
			return 200, map[string]any{"children": []any{configMap(shared, "of-b")}}
		}
		return 200, nil
	})
	opA := operatorFor(t, "leftbehinda", ns, ha.URL, func(s *spec.OperatorSpec) {
		s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	opB := operatorFor(t, "leftbehindb", ns, hb.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	startGateway(t, opA, opB)
	w := widget(ns, "w", 1)
	w.SetLabels(map[string]string{"team": "a"})
	if _, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error { _, err := getConfigMap(t, shared, "of-a"); return err })
	eventually(t, 20*time.Second, func() error { _, err := getConfigMap(t, shared, "of-b"); return err })
	updateWidget(t, ns, "w", func(u *unstructured.Unstructured) { u.SetLabels(map[string]string{"team": "b"}) })
	var msg string
	eventually(t, 20*time.Second, func() error {
		for _, e := range events(t, ns, "w") {
			if e.Type == "Warning" && e.Reason == "ChildrenLeftBehind" {
				msg = e.Message
				return nil
			}
		}
		return fmt.Errorf("no Warning ChildrenLeftBehind on %s/w", ns)
	})
	m := regexp.MustCompile(`-l (\S+)`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no -l selector in %q", msg)
	}
	list, err := kube(t).CoreV1().ConfigMaps(shared).List(context.Background(), metav1.ListOptions{LabelSelector: m[1]})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range list.Items {
		if cm.Name == "of-b" {
			t.Errorf("the Warning's recipe (-l %s) also deletes ConfigMap %s/of-b, a live child operator leftbehindb still manages for the same parent; message: %s", m[1], shared, msg)
		}
	}
}
