package engine

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/metrics"
	"github.com/opgate/opgate/gateway/spec"
)

// A WebhookOperator deleted between the cache's look and the gateway's
// finalizer write (the write answers NotFound) must not be started: it
// would put finalizers on objects and call handlers for an operator that
// no longer exists, until its delete event arrives.
func TestRegistryDoesNotStartAnOperatorDeletedBeforeItsFinalizer(t *testing.T) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	caller, err := call.New(call.Config{})
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(OperatorResource.GroupVersion().WithKind(spec.Kind), meta.RESTScopeRoot)
	r, err := NewRegistry(Deps{
		Dynamic:  dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{OperatorResource: spec.Kind + "List"}),
		Metadata: metadatafake.NewSimpleMetadataClient(metadatafake.NewTestScheme()),
		Kube:     kubefake.NewClientset(),
		Mapper:   meta.MultiRESTMapper{mapper},
		Caller:   caller,
		Recorder: record.NewFakeRecorder(100),
		Metrics:  m,
	})
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": OperatorResource.GroupVersion().String(), "kind": spec.Kind,
		"metadata": map[string]any{"name": "gone", "uid": "u1", "generation": int64(1)},
		"spec": map[string]any{
			"watch":     map[string]any{"apiVersion": "v1", "kind": "ConfigMap"},
			"handler":   map[string]any{"url": "http://handler"},
			"callbacks": []any{map[string]any{"id": "create", "events": []any{"create"}}},
		},
	}}
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := idx.Add(obj); err != nil {
		t.Fatal(err)
	}
	r.lister = cache.NewGenericLister(idx, OperatorResource.GroupResource())
	if err := r.sync(context.Background(), "gone"); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if _, err := spec.DecodeObject(obj.DeepCopy().Object); err != nil {
		t.Fatalf("the test operator is invalid: %v", err)
	}
	if running := r.mgr.View(); len(running) != 0 {
		t.Errorf("running %d operators after the WebhookOperator was found gone, want none", len(running))
	}
}
