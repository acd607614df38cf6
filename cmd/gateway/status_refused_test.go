package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/engine"
)

// An invalid edit of a running operator is refused and the operator keeps
// running its last valid spec (docs/operations.md). status shows the
// stored Ready, says the latest spec is refused, and counts the objects of
// the refused spec's spec.watch; status of one object and reconcile work.
// A refused spec naming no kind has unknown counts, and the command fails.
func TestStatusOfAnOperatorWhoseLatestEditIsRefused(t *testing.T) {
	cfg := startAPIServer(t)
	registerReady(t, cfg, memcachedFile)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(cfg)
	memcacheds := dyn.Resource(schema.GroupVersionResource{Group: "cache.example.com", Version: "v1alpha1", Resource: "memcacheds"}).Namespace("default")
	mc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
		"metadata": map[string]any{"name": "m", "namespace": "default"},
		"spec":     map[string]any{"size": int64(1)},
	}}
	if _, err := memcacheds.Create(ctx, mc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	edit := func(t *testing.T, patch string) {
		t.Helper()
		if _, err := dyn.Resource(engine.OperatorResource).Patch(ctx, "memcached", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("the API server refused the edit (the test needs one only the gateway refuses): %v", err)
		}
	}
	admin := writeKubeconfig(t, cfg, "", "")
	const refused = "latest spec refused (SpecAccepted False)"

	// when.fields naming status: the CRD's schema takes it, the gateway does not.
	edit(t, `[{"op":"replace","path":"/spec/callbacks/1/when/fields","value":["status.size"]}]`)
	tests := []struct {
		name    string
		args    []string
		wantOut []string
	}{
		{"every operator", []string{"status"},
			[]string{"memcached  cache.example.com/v1alpha1/Memcached  True   1        0        0", refused, "status.size"}},
		{"one operator", []string{"status", "memcached"},
			[]string{"Ready True, 1 object, 0 failing, 0 waiting on a finalizer", refused, "status.size", "Every object is settled or pending."}},
		{"one object", []string{"status", "memcached", "default/m"},
			[]string{refused, "default/m (operator memcached)", "state:       pending", "Callbacks: unknown"}},
		{"reconcile", []string{"reconcile", "memcached", "default/m"},
			[]string{"memcached default/m: " + decide.ReconcileRequestAnnotation + "="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := execute(t, append(tt.args, "--kubeconfig", admin)...)
			if err != nil {
				t.Fatalf("error = %v, want none; printed:\n%s", err, out)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "InvalidSpec") {
				t.Errorf("output shows the running operator's Ready as InvalidSpec:\n%s", out)
			}
		})
	}
	// Scripts iterate callbacks (jq '.callbacks[]'): unknown callbacks are
	// an empty list, beside specError, not null.
	t.Run("one object as JSON", func(t *testing.T) {
		out, _, err := execute(t, "status", "memcached", "default/m", "-o", "json", "--kubeconfig", admin)
		if err != nil {
			t.Fatalf("error = %v, want none; printed:\n%s", err, out)
		}
		var d struct {
			SpecError string          `json:"specError"`
			Callbacks json.RawMessage `json:"callbacks"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if d.SpecError == "" || string(d.Callbacks) != "[]" {
			t.Errorf("specError %q, callbacks %s; want the refused spec's error and [] (no callback known):\n%s", d.SpecError, d.Callbacks, out)
		}
	})
	got, err := memcacheds.Get(ctx, "m", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetAnnotations()[decide.ReconcileRequestAnnotation] == "" {
		t.Errorf("reconcile did not annotate default/m: %v", got.GetAnnotations())
	}

	// A refused spec.watch naming no kind: its objects are unknown.
	edit(t, `[{"op":"replace","path":"/spec/watch/apiVersion","value":"not/a/version"}]`)
	for _, args := range [][]string{{"status"}, {"status", "memcached"}, {"status", "memcached", "default/m"}, {"reconcile", "memcached", "default/m"}} {
		t.Run(strings.Join(args, " ")+" of a refused spec naming no kind", func(t *testing.T) {
			out, _, err := execute(t, append(args, "--kubeconfig", admin)...)
			if err == nil || !strings.Contains(err.Error(), "names no kind to watch") {
				t.Errorf("error = %v, want the refused spec naming no kind; printed:\n%s", err, out)
			}
			if len(args) < 3 && !strings.Contains(out, "?") {
				t.Errorf("output lacks unknown counts:\n%s", out)
			}
			if strings.Contains(out, " 0 ") {
				t.Errorf("output counts zero for unknown objects:\n%s", out)
			}
		})
	}
}

// The gateway keeps running the last valid selector when an edit's
// spec.watch.labelSelector does not parse; the cluster keeps only the
// refused one, which selects nothing the command can tell. status must not
// count, nor reconcile annotate, objects by it (an unparsable selector is
// no selector at all): the counts are unknown and the command fails, as
// for a refused spec naming no kind.
func TestStatusOfARefusedSpecWhoseSelectorDoesNotParseLeavesItsObjectsUnknown(t *testing.T) {
	cfg := startAPIServer(t)
	registerReady(t, cfg, memcachedFile)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(cfg)
	memcacheds := dyn.Resource(schema.GroupVersionResource{Group: "cache.example.com", Version: "v1alpha1", Resource: "memcacheds"}).Namespace("default")
	for _, tier := range []string{"web", "batch"} {
		mc := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
			"metadata": map[string]any{"name": tier, "namespace": "default", "labels": map[string]any{"tier": tier}},
			"spec":     map[string]any{"size": int64(1)},
		}}
		if _, err := memcacheds.Create(ctx, mc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	edit := func(t *testing.T, patch string) {
		t.Helper()
		if _, err := dyn.Resource(engine.OperatorResource).Patch(ctx, "memcached", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("the API server refused the edit (the test needs one only the gateway refuses): %v", err)
		}
	}
	admin := writeKubeconfig(t, cfg, "", "")

	// The spec the gateway runs selects tier=web: one object.
	edit(t, `[{"op":"add","path":"/spec/watch/labelSelector","value":{"matchLabels":{"tier":"web"}}}]`)
	out, _, err := execute(t, "status", "memcached", "--kubeconfig", admin)
	if err != nil || !strings.Contains(out, "1 object,") {
		t.Fatalf("valid selector tier=web: error = %v, want 1 object; printed:\n%s", err, out)
	}

	// A label value with a space: the CRD's schema takes it, the gateway does not.
	edit(t, `[{"op":"replace","path":"/spec/watch/labelSelector/matchLabels/tier","value":"web app"}]`)
	for _, args := range [][]string{{"status"}, {"status", "memcached"}, {"status", "memcached", "default/batch"}, {"reconcile", "memcached", "default/batch"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, _, err := execute(t, append(args, "--kubeconfig", admin)...)
			if err == nil || !strings.Contains(err.Error(), "labelSelector does not parse") {
				t.Errorf("error = %v, want the refused spec's selector not parsing; printed:\n%s", err, out)
			}
			if len(args) < 3 && !strings.Contains(out, "?") {
				t.Errorf("output lacks unknown counts:\n%s", out)
			}
			if strings.Contains(out, "2 objects") || strings.Contains(out, " 2 ") {
				t.Errorf("output counts objects by a selector that does not parse:\n%s", out)
			}
		})
	}
	got, err := memcacheds.Get(ctx, "batch", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := got.GetAnnotations()[decide.ReconcileRequestAnnotation]; ok {
		t.Errorf("reconcile annotated default/batch, which no spec of the operator selects: %s=%s", decide.ReconcileRequestAnnotation, v)
	}
}
