package integration

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var widgets = schema.GroupVersionResource{Group: "test.opgate.dev", Version: "v1", Resource: "widgets"}

func TestCustomResourceRoundTripsThroughRealAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dyn := dynamic.NewForConfigOrDie(cfg)

	in := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.opgate.dev/v1",
		"kind":       "Widget",
		"metadata":   map[string]any{"name": "roundtrip", "namespace": "default"},
		"spec":       map[string]any{"size": int64(3), "unknown": "pruned by the apiserver"},
	}}
	if _, err := dyn.Resource(widgets).Namespace("default").Create(ctx, in, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create widget: %v", err)
	}
	got, err := dyn.Resource(widgets).Namespace("default").Get(ctx, "roundtrip", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get widget: %v", err)
	}
	size, _, _ := unstructured.NestedInt64(got.Object, "spec", "size")
	if size != 3 {
		t.Errorf("spec.size = %d, want 3", size)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "unknown"); found {
		t.Errorf("spec.unknown survived; the apiserver should have pruned it (is the CRD schema installed?)")
	}
	if got.GetUID() == "" {
		t.Errorf("widget has no uid: not stored by a real apiserver")
	}
}
