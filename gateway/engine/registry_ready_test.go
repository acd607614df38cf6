package engine

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/spec"
)

// TestRegistryReadyLeavesOutAWebhookOperatorBeingDeleted: an operator
// whose caches have not synced, or whose watch is refused, keeps the
// gateway out of service, but not once its WebhookOperator is being
// deleted (docs/operations.md): the operator is stopped, and its last
// report stays until the release of its objects is done, which may take
// long or keep failing.
func TestRegistryReadyLeavesOutAWebhookOperatorBeingDeleted(t *testing.T) {
	for _, tt := range []struct {
		name     string
		reason   string
		deleting bool
		ready    bool
	}{
		{name: "caches filling", reason: spec.ReasonCacheNotSynced},
		{name: "watch forbidden", reason: spec.ReasonForbidden},
		{name: "caches filling, being deleted", reason: spec.ReasonCacheNotSynced, deleting: true, ready: true},
		{name: "watch forbidden, being deleted", reason: spec.ReasonForbidden, deleting: true, ready: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{}
			obj.SetAPIVersion(spec.Group + "/" + spec.Version)
			obj.SetKind("WebhookOperator")
			obj.SetName("op")
			if tt.deleting {
				now := metav1.Now()
				obj.SetDeletionTimestamp(&now)
				obj.SetFinalizers([]string{RegistryFinalizer})
			}
			idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
			if err := idx.Add(obj); err != nil {
				t.Fatal(err)
			}
			r := &Registry{
				lister:  cache.NewGenericLister(idx, OperatorResource.GroupResource()),
				regs:    map[string]*registration{"op": {generation: 1, state: &OperatorState{Generation: 1, Reason: tt.reason, Message: "m"}}},
				failing: map[string]string{},
			}
			r.synced.Store(true)
			err := r.Ready()
			if tt.ready && err != nil {
				t.Errorf("Ready() = %v, want ready: the WebhookOperator is being deleted", err)
			}
			if !tt.ready && err == nil {
				t.Errorf("Ready() = nil, want operator op named (%s)", tt.reason)
			}
		})
	}
}
