package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/gateway/decide"
)

// reconcile annotates only an object the operator watches, as status
// describes only those: on another, the annotation would wait for a
// gateway that never looks at it.
func TestReconcileRefusesAnObjectTheOperatorDoesNotWatch(t *testing.T) {
	cfg := startAPIServer(t)
	createMemcached(t, cfg, "demo", "example")
	kc := writeKubeconfig(t, cfg, "", "demo")
	dir := t.TempDir()
	operator := func(name, watch string) string {
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(`apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: `+name+`}
spec:
  watch: {apiVersion: cache.example.com/v1alpha1, kind: Memcached, `+watch+`}
  handler: {url: "http://127.0.0.1:8081"}
  callbacks: [{id: create, events: [create]}]
`), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name, file string
	}{
		{"another namespace", operator("elsewhere", "namespaces: [shop]")},
		{"a label selector it does not match", operator("labelled", "labelSelector: {matchLabels: {tier: cache}}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := execute(t, "reconcile", strings.TrimSuffix(filepath.Base(tt.file), ".yaml"), "example", "-f", tt.file, "--kubeconfig", kc)
			if err == nil || !strings.Contains(err.Error(), "Memcached demo/example is not watched by") {
				t.Fatalf("error = %v, want it to say the operator does not watch demo/example; printed:\n%s", err, out)
			}
		})
	}
	got, err := dynamic.NewForConfigOrDie(cfg).Resource(memcachedResource).Namespace("demo").Get(context.Background(), "example", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := got.GetAnnotations()[decide.ReconcileRequestAnnotation]; ok {
		t.Errorf("demo/example was annotated %s=%s", decide.ReconcileRequestAnnotation, v)
	}
}
