package integration

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/spec"
)

// lastSyncRelated returns the number of sync calls and the sorted names of
// the related objects of kind key in the last one.
func lastSyncRelated(h *handler, key string) (int, []string) {
	calls := h.calls("sync")
	if len(calls) == 0 {
		return 0, nil
	}
	return len(calls), slices.Sorted(maps.Keys(calls[len(calls)-1].Related[key]))
}

// syncSees waits for a sync whose related objects of kind key are want.
func syncSees(t *testing.T, h *handler, key string, want ...string) {
	t.Helper()
	slices.Sort(want)
	eventually(t, 15*time.Second, func() error {
		n, got := lastSyncRelated(h, key)
		if !slices.Equal(got, want) {
			return fmt.Errorf("after %d syncs the last one's related %s are %v, want %v", n, key, got, want)
		}
		return nil
	})
}

// createGadget creates a cluster-scoped Gadget, deleted when the test ends.
func createGadget(t *testing.T, name string, lbls map[string]any) {
	t.Helper()
	g := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.opgate.dev/v1", "kind": "Gadget",
		"metadata": map[string]any{"name": name, "labels": lbls},
		"spec":     map[string]any{"size": int64(1)},
	}}
	if _, err := dyn(t).Resource(gadgets).Create(context.Background(), g, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dyn(t).Resource(gadgets).Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// A cluster-scoped parent is sent the related objects its selector matches
// in every namespace, so a change of any of them wakes it: the new
// ConfigMaps reach the handler at once, not at the next resync.
func TestClusterScopedParentIsWokenByItsRelatedObjectsInEveryNamespace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value func(gadget string) string // the selector's value of label gadget
	}{
		{"templated selector", func(string) string { return "{{ .metadata.name }}" }},
		{"plain selector", func(gadget string) string { return gadget }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nsA, nsB := newNamespace(t), newNamespace(t)
			h := newHandler(t, ok(nil))
			startGateway(t, operatorFor(t, "clusterparent", nsA, h.URL, func(s *spec.OperatorSpec) {
				s.Watch = spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Gadget",
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"test": nsA}}}
				s.Children = nil
				s.Related = []spec.RelatedSpec{{APIVersion: "v1", Kind: "ConfigMap",
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"gadget": tc.value(nsA)}}}}
				s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
			}))
			createGadget(t, nsA, map[string]any{"test": nsA})
			eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })

			for _, ns := range []string{nsA, nsB} {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns, Labels: map[string]string{"gadget": nsA}}}
				if _, err := kube(t).CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			syncSees(t, h, "v1/ConfigMap", nsA+"/settings", nsB+"/settings")

			if err := kube(t).CoreV1().ConfigMaps(nsB).Delete(context.Background(), "settings", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			syncSees(t, h, "v1/ConfigMap", nsA+"/settings")
		})
	}
}

// A namespaced parent may relate to a cluster-scoped kind: it is sent the
// objects its selector matches (keyed by name alone), and their changes
// wake it, whether or not spec.watch.namespaces is set.
func TestNamespacedParentIsSentAndWokenByClusterScopedRelatedObjects(t *testing.T) {
	for _, tc := range []struct {
		name       string
		namespaces func(ns string) []string
	}{
		{"watch.namespaces set", func(ns string) []string { return []string{ns} }},
		{"every namespace", func(string) []string { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(nil))
			startGateway(t, operatorFor(t, "clusterrelated", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Watch.Namespaces = tc.namespaces(ns)
				s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"test": ns}}
				s.Children = nil
				s.Related = []spec.RelatedSpec{{APIVersion: "test.opgate.dev/v1", Kind: "Gadget",
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"test": "{{ .metadata.namespace }}"}}}}
				s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
			}))
			first := ns + "-a"
			createGadget(t, first, map[string]any{"test": ns})
			w := widget(ns, "example", 1)
			w.SetLabels(map[string]string{"test": ns})
			if _, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			syncSees(t, h, "test.opgate.dev/v1/Gadget", first)

			second := ns + "-b"
			createGadget(t, second, map[string]any{"test": ns})
			syncSees(t, h, "test.opgate.dev/v1/Gadget", first, second)
		})
	}
}
