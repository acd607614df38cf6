package engine

import (
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/opgate/opgate/gateway/spec"
)

// relatedController is a Controller with built (not started) informers
// whose parent cache holds n Widgets in one namespace, each selecting the
// ConfigMaps labelled app=<its name>.
func relatedController(tb testing.TB, n int) *Controller {
	tb.Helper()
	widget := schema.GroupVersionKind{Group: "test.opgate.dev", Version: "v1", Kind: "Widget"}
	cm := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	mapping := func(gvk schema.GroupVersionKind, resource string) *meta.RESTMapping {
		return &meta.RESTMapping{GroupVersionKind: gvk, Resource: gvk.GroupVersion().WithResource(resource), Scope: meta.RESTScopeNamespace}
	}
	op := &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: spec.OperatorSpec{
		Watch: spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Widget", Namespaces: []string{"ns"}},
		Related: []spec.RelatedSpec{{APIVersion: "v1", Kind: "ConfigMap",
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "{{ .metadata.name }}"}}}},
	}}
	c := &Controller{op: op, memory: map[string]*objectMemory{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	c.Dynamic = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	c.parent = &watched{mapping: mapping(widget, "widgets")}
	c.related = []relatedKind{{spec: op.Spec.Related[0], watched: &watched{mapping: mapping(cm, "configmaps")}}}
	c.buildInformers()
	idx := c.parent.informers["ns"].GetIndexer()
	for i := range n {
		w := &unstructured.Unstructured{}
		w.SetGroupVersionKind(widget)
		w.SetNamespace("ns")
		w.SetName(fmt.Sprintf("w%05d", i))
		w.SetUID(types.UID(fmt.Sprintf("uid-%d", i)))
		if err := idx.Add(w); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(c.queue.ShutDown)
	return c
}

func configMap(name string, lbls map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	u.SetNamespace("ns")
	u.SetName(name)
	u.SetLabels(lbls)
	return u
}

// A related object's event enqueues exactly the parents it is related to.
func TestRelatedEventEnqueuesItsParentOnly(t *testing.T) {
	c := relatedController(t, 50)
	c.enqueueRelatedParents(configMap("cfg", map[string]string{"app": "w00007"}))
	c.enqueueRelatedParents(configMap("other", map[string]string{"tier": "x"}))
	if c.queue.Len() != 1 {
		t.Fatalf("queue holds %d keys, want 1", c.queue.Len())
	}
	if key, _ := c.queue.Get(); key != "ns/w00007" {
		t.Errorf("queued %q, want ns/w00007", key)
	}
}

// BenchmarkRelatedEventToParents is one related object's event with 10 000
// parents in its namespace.
func BenchmarkRelatedEventToParents(b *testing.B) {
	c := relatedController(b, 10000)
	obj := configMap("cfg", map[string]string{"app": "w00007"})
	b.ReportAllocs()
	for b.Loop() {
		c.enqueueRelatedParents(obj)
	}
}

// scopedRelatedController is a Controller with built (not started)
// informers over every namespace, its parent kind Widget and related kind
// ConfigMap each of the scope given, whose parent cache holds parents
// ("namespace/name" or "name") and whose related kind is selected by sel.
func scopedRelatedController(t *testing.T, parentScope, relatedScope meta.RESTScope, sel map[string]string, parents []string) *Controller {
	t.Helper()
	widget := schema.GroupVersionKind{Group: "test.opgate.dev", Version: "v1", Kind: "Widget"}
	cm := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	op := &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: "scopes"}, Spec: spec.OperatorSpec{
		Watch:   spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Widget"},
		Related: []spec.RelatedSpec{{APIVersion: "v1", Kind: "ConfigMap", LabelSelector: &metav1.LabelSelector{MatchLabels: sel}}},
	}}
	c := &Controller{op: op, memory: map[string]*objectMemory{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	t.Cleanup(c.queue.ShutDown)
	c.Dynamic = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	c.parent = &watched{mapping: &meta.RESTMapping{GroupVersionKind: widget, Resource: widget.GroupVersion().WithResource("widgets"), Scope: parentScope}}
	c.related = []relatedKind{{spec: op.Spec.Related[0], watched: &watched{
		mapping: &meta.RESTMapping{GroupVersionKind: cm, Resource: cm.GroupVersion().WithResource("configmaps"), Scope: relatedScope}}}}
	c.buildInformers()
	for _, key := range parents {
		ns, name, _ := cache.SplitMetaNamespaceKey(key)
		w := &unstructured.Unstructured{}
		w.SetGroupVersionKind(widget)
		w.SetNamespace(ns)
		w.SetName(name)
		w.SetUID(types.UID("uid-" + key))
		if err := c.parent.informers[metav1.NamespaceAll].GetIndexer().Add(w); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// A related object is sent to, and its change wakes, exactly the parents
// whose selector matches it in their scope: a namespaced parent's related
// objects of a namespaced kind come from its own namespace; a
// cluster-scoped parent's, or those of a cluster-scoped related kind, from
// every namespace.
func TestRelatedObjectReachesTheParentsItMatchesInEveryScope(t *testing.T) {
	templated := map[string]string{"app": "{{ .metadata.name }}"}
	plain := map[string]string{"tier": "web"}
	for _, tc := range []struct {
		name                      string
		parentScope, relatedScope meta.RESTScope
		sel                       map[string]string
		parents                   []string
		relatedNS                 string
		relatedLabels             map[string]string
		want                      []string
	}{
		{"namespaced parent, namespaced kind, templated", meta.RESTScopeNamespace, meta.RESTScopeNamespace, templated,
			[]string{"a/p", "a/q", "b/p"}, "a", map[string]string{"app": "p"}, []string{"a/p"}},
		{"namespaced parent, namespaced kind, plain", meta.RESTScopeNamespace, meta.RESTScopeNamespace, plain,
			[]string{"a/p", "a/q", "b/p"}, "a", map[string]string{"tier": "web"}, []string{"a/p", "a/q"}},
		{"cluster-scoped parent, namespaced kind, templated", meta.RESTScopeRoot, meta.RESTScopeNamespace, templated,
			[]string{"p", "q"}, "a", map[string]string{"app": "p"}, []string{"p"}},
		{"cluster-scoped parent, namespaced kind, plain", meta.RESTScopeRoot, meta.RESTScopeNamespace, plain,
			[]string{"p", "q"}, "a", map[string]string{"tier": "web"}, []string{"p", "q"}},
		{"namespaced parent, cluster-scoped kind, templated", meta.RESTScopeNamespace, meta.RESTScopeRoot, templated,
			[]string{"a/p", "a/q", "b/p"}, "", map[string]string{"app": "p"}, []string{"a/p", "b/p"}},
		{"namespaced parent, cluster-scoped kind, plain", meta.RESTScopeNamespace, meta.RESTScopeRoot, plain,
			[]string{"a/p", "a/q", "b/p"}, "", map[string]string{"tier": "web"}, []string{"a/p", "a/q", "b/p"}},
		{"cluster-scoped parent, cluster-scoped kind, templated", meta.RESTScopeRoot, meta.RESTScopeRoot, templated,
			[]string{"p", "q"}, "", map[string]string{"app": "p"}, []string{"p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := scopedRelatedController(t, tc.parentScope, tc.relatedScope, tc.sel, tc.parents)
			obj := configMap("cfg", tc.relatedLabels)
			obj.SetNamespace(tc.relatedNS)
			if err := c.related[0].informers[metav1.NamespaceAll].GetIndexer().Add(obj); err != nil {
				t.Fatal(err)
			}

			c.enqueueRelatedParents(obj)
			var woken []string
			for c.queue.Len() > 0 {
				key, _ := c.queue.Get()
				woken = append(woken, key)
				c.queue.Done(key)
			}
			slices.Sort(woken)
			if !slices.Equal(woken, tc.want) {
				t.Errorf("the related object's event woke %v, want %v", woken, tc.want)
			}

			for _, key := range tc.parents {
				parent, ok := c.parent.get(key)
				if !ok {
					t.Fatalf("parent %s not cached", key)
				}
				related, err := c.relatedObjects(parent)
				if err != nil {
					t.Fatal(err)
				}
				sent := len(related["v1/ConfigMap"]) > 0
				if want := slices.Contains(tc.want, key); sent != want {
					t.Errorf("parent %s is sent the related object: %v, want %v (sent %v)", key, sent, want, related)
				}
			}
		})
	}
}
