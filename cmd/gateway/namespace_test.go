package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/gateway/decide"
)

var memcachedResource = schema.GroupVersionResource{Group: "cache.example.com", Version: "v1alpha1", Resource: "memcacheds"}

// createMemcached creates the namespace and a Memcached in it.
func createMemcached(t *testing.T, cfg *rest.Config, ns, name string) {
	t.Helper()
	ctx := context.Background()
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{"size": int64(1)},
	}}
	if _, err := dynamic.NewForConfigOrDie(cfg).Resource(memcachedResource).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Memcached: %v", err)
	}
}

// A bare NAME of a namespaced kind is in -n's namespace, else the
// kubeconfig context's, else default, as kubectl reads it.
func TestStatusAndReconcileFindABareNameInTheContextNamespace(t *testing.T) {
	cfg := startAPIServer(t)
	createMemcached(t, cfg, "demo", "example")
	inDemo := writeKubeconfig(t, cfg, "", "demo")
	noNamespace := writeKubeconfig(t, cfg, "", "")
	namespaces := filepath.Join(t.TempDir(), "namespaces.yaml")
	if err := os.WriteFile(namespaces, []byte(`apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: namespaces}
spec:
  watch: {apiVersion: v1, kind: Namespace}
  handler: {url: "http://127.0.0.1:8081"}
  callbacks: [{id: create, events: [create]}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{"status, the context's namespace", []string{"status", "memcached", "example", "--kubeconfig", inDemo}, "demo/example (operator memcached)", ""},
		{"reconcile, the context's namespace", []string{"reconcile", "memcached", "example", "--kubeconfig", inDemo}, "memcached demo/example: " + decide.ReconcileRequestAnnotation + "=", ""},
		{"status, -n", []string{"status", "memcached", "example", "-n", "demo", "--kubeconfig", noNamespace}, "demo/example (operator memcached)", ""},
		{"reconcile, --namespace", []string{"reconcile", "memcached", "example", "--namespace", "demo", "--kubeconfig", noNamespace}, "memcached demo/example: ", ""},
		{"-n over the context's", []string{"status", "memcached", "example", "-n", "default", "--kubeconfig", inDemo}, "", "Memcached default/example not found"},
		{"no namespace in the context: default", []string{"status", "memcached", "example", "--kubeconfig", noNamespace}, "", "Memcached default/example not found"},
		{"NAMESPACE/NAME as given", []string{"status", "memcached", "demo/example", "--kubeconfig", noNamespace}, "demo/example (operator memcached)", ""},
		{"NAMESPACE/NAME and another -n", []string{"reconcile", "memcached", "demo/example", "-n", "other", "--kubeconfig", noNamespace}, "", `demo/example names namespace demo, -n says other`},
		{"-n without an object", []string{"status", "memcached", "-n", "demo", "--kubeconfig", inDemo}, "", "-n applies to an object: give OPERATOR NAME"},
		{"cluster-scoped: no namespace", []string{"status", "namespaces", "demo", "-f", namespaces, "--kubeconfig", inDemo}, "demo (operator namespaces)", ""},
		{"cluster-scoped: NAMESPACE/NAME refused", []string{"reconcile", "namespaces", "demo/demo", "-f", namespaces, "--kubeconfig", inDemo}, "", "Namespace v1 is cluster-scoped: give its NAME alone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !slices.Contains(args, "-f") {
				args = append(args, "-f", memcachedFile)
			}
			out, _, err := execute(t, args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q; printed:\n%s", err, tt.wantErr, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v; printed:\n%s", err, out)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out)
			}
		})
	}
	got, err := dynamic.NewForConfigOrDie(cfg).Resource(memcachedResource).Namespace("demo").Get(context.Background(), "example", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetAnnotations()[decide.ReconcileRequestAnnotation] == "" {
		t.Errorf("demo/example has no %s: reconcile annotated something else", decide.ReconcileRequestAnnotation)
	}
}
