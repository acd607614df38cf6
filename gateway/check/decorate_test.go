package check

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// echoedChild is a child as a handler might send it back after copying it
// from the observed children of a sync request: with server-set fields.
func echoedChild(namespace string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata": map[string]any{
			"name":              "web",
			"namespace":         namespace,
			"labels":            map[string]any{"app": "web"},
			"resourceVersion":   "42",
			"uid":               "child-uid",
			"generation":        int64(3),
			"creationTimestamp": "2026-01-01T00:00:00Z",
			"managedFields":     []any{map[string]any{"manager": "kubectl"}},
			"ownerReferences":   []any{map[string]any{"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached", "name": "example", "uid": ""}},
		},
		"spec":   map[string]any{"replicas": int64(3)},
		"status": map[string]any{"readyReplicas": int64(3)},
	}}
}

func TestDecorate(t *testing.T) {
	yes := true
	tests := []struct {
		name       string
		parent     *unstructured.Unstructured
		child      *unstructured.Unstructured
		wantOwners []metav1.OwnerReference
		// wantOwnerUID is the OwnerUIDLabel expected (empty: absent).
		wantOwnerUID string
	}{
		{
			name:   "same-namespace child gets the parent as its only controller owner",
			parent: namespacedParent(),
			child:  echoedChild("demo"),
			wantOwners: []metav1.OwnerReference{{
				APIVersion: "cache.example.com/v1alpha1", Kind: "Memcached", Name: "example", UID: "parent-uid",
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		{
			name:   "namespaced child of a cluster-scoped parent gets the owner",
			parent: clusterParent(),
			child:  echoedChild("team-a"),
			wantOwners: []metav1.OwnerReference{{
				APIVersion: "cache.example.com/v1alpha1", Kind: "MemcachedCluster", Name: "example", UID: "cluster-parent-uid",
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		{
			// The garbage collector would delete a child whose namespaced
			// owner lives in another namespace.
			name:         "cross-namespace child gets no ownerReference but the owner label",
			parent:       namespacedParent(),
			child:        echoedChild("shared"),
			wantOwners:   nil,
			wantOwnerUID: "parent-uid",
		},
		{
			// ... and never collects a cluster-scoped one of a namespaced owner.
			name:         "cluster-scoped child of a namespaced parent gets the owner label",
			parent:       namespacedParent(),
			child:        echoedChild(""),
			wantOwners:   nil,
			wantOwnerUID: "parent-uid",
		},
		{
			name:   "cluster-scoped child of a cluster-scoped parent gets the owner",
			parent: clusterParent(),
			child:  echoedChild(""),
			wantOwners: []metav1.OwnerReference{{
				APIVersion: "cache.example.com/v1alpha1", Kind: "MemcachedCluster", Name: "example", UID: "cluster-parent-uid",
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Decorate(tt.child, tt.parent, testOperator)

			if got := tt.child.GetOwnerReferences(); !reflect.DeepEqual(got, tt.wantOwners) {
				t.Errorf("ownerReferences = %+v, want %+v", got, tt.wantOwners)
			}
			wantLabels := map[string]string{"app": "web", OperatorLabel: testOperator}
			if tt.wantOwnerUID != "" {
				wantLabels[OwnerUIDLabel] = tt.wantOwnerUID
			}
			if got := tt.child.GetLabels(); !reflect.DeepEqual(got, wantLabels) {
				t.Errorf("labels = %v, want %v", got, wantLabels)
			}
			for _, f := range [][]string{
				{"status"},
				{"metadata", "resourceVersion"},
				{"metadata", "uid"},
				{"metadata", "managedFields"},
				{"metadata", "creationTimestamp"},
				{"metadata", "generation"},
			} {
				if _, found, _ := unstructured.NestedFieldNoCopy(tt.child.Object, f...); found {
					t.Errorf("field %v was not stripped", f)
				}
			}
			if got, _, _ := unstructured.NestedInt64(tt.child.Object, "spec", "replicas"); got != 3 {
				t.Errorf("spec.replicas = %d, want the handler's 3 kept", got)
			}
		})
	}
}

func TestDecorateOverwritesAWrongOperatorLabel(t *testing.T) {
	child := newObj("apps/v1", "Deployment", "demo", "web")
	child.SetLabels(map[string]string{OperatorLabel: "nginx"})

	Decorate(child, namespacedParent(), testOperator)

	if got := child.GetLabels()[OperatorLabel]; got != testOperator {
		t.Errorf("label %s = %q, want %q", OperatorLabel, got, testOperator)
	}
}
