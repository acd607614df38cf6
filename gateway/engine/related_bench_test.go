package engine

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
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
