package engine

import (
	"encoding/json"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
)

// memcachedCRD is the bench's Memcached CRD: spec.size, and a status of
// {observedSize, deploymentName}.
func memcachedCRD(tb testing.TB) *statusSchema {
	tb.Helper()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "memcacheds.bench.opgate.dev", "generation": int64(1)},
		"spec": map[string]any{
			"group": "bench.opgate.dev", "scope": "Namespaced",
			"names": map[string]any{"kind": "Memcached", "plural": "memcacheds"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"subresources": map[string]any{"status": map[string]any{}},
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"spec": map[string]any{"type": "object", "properties": map[string]any{
							"size": map[string]any{"type": "integer", "format": "int32", "minimum": 1.0, "maximum": 10.0},
						}},
						"status": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": map[string]any{
							"observedSize":   map[string]any{"type": "integer"},
							"deploymentName": map[string]any{"type": "string"},
						}},
					},
				}},
			}},
		},
	}}
	s := &statusSchema{version: "v1"}
	if _, err := s.update(crd); err != nil {
		tb.Fatal(err)
	}
	return s
}

// memcachedController is a Controller of a memcached-like operator, enough
// to build requests and check answers: one Deployment child kind and the
// CRD's status schema.
func memcachedController(tb testing.TB) *Controller {
	tb.Helper()
	deploy := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	op := &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: "memcached"}, Spec: spec.OperatorSpec{
		Watch:    spec.WatchSpec{APIVersion: "bench.opgate.dev/v1", Kind: "Memcached"},
		Children: []spec.ChildSpec{{APIVersion: "apps/v1", Kind: "Deployment"}},
	}}
	return &Controller{op: op, status: memcachedCRD(tb), children: []childKind{{
		spec: op.Spec.Children[0],
		watched: &watched{mapping: &meta.RESTMapping{GroupVersionKind: deploy,
			Resource: deploy.GroupVersion().WithResource("deployments"), Scope: meta.RESTScopeNamespace}},
	}}}
}

// memcachedObject is a memcached-like object as the cache holds it, with
// the gateway's state annotation.
func memcachedObject() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "bench.opgate.dev/v1",
		"kind":       "Memcached",
		"metadata": map[string]any{
			"name": "m00042", "namespace": "bench", "uid": "4c8f7b1e-2f5a-4d3c-9a1b-0e6d5f4c3b2a",
			"resourceVersion": "123456", "generation": int64(2), "creationTimestamp": "2026-11-25T10:00:00Z",
			"labels":      map[string]any{"app": "memcached"},
			"annotations": map[string]any{"opgate.dev/state.memcached": "H4sIAAAAAAAA/6pWKkktLlGyUlAqS8wpTVWqBQQAAP//Ke3lXxQAAAA=", "note": "kept"},
			"finalizers":  []any{"opgate.dev/memcached"},
		},
		"spec":   map[string]any{"size": int64(3)},
		"status": map[string]any{"observedSize": int64(1), "deploymentName": "m00042"},
	}}
}

// BenchmarkBuildRequest builds the request of a memcached-like update
// (object, old essence, diff); the call client's encoding of it is in
// gateway/call's BenchmarkCallMemcached.
func BenchmarkBuildRequest(b *testing.B) {
	c := memcachedController(b)
	p := &pass{obj: memcachedObject()}
	w := decide.Work{
		Callback: spec.Callback{ID: "update"}, Event: spec.EventUpdate,
		Old:  map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "memcached"}}, "spec": map[string]any{"size": int64(1)}},
		Diff: []callbacks.DiffOp{{Op: callbacks.OpChange, Path: "/spec/size", Old: json.RawMessage("1"), New: json.RawMessage("3")}},
	}
	first := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if req := c.buildRequest(p, w, 1, first); req.Object == nil || req.Old == nil {
			b.Fatal("request without object or old")
		}
	}
}

// BenchmarkCheckAnswer checks a memcached-like answer as applyResponse
// does before writing: its Deployment child and its status against the
// CRD's schema.
func BenchmarkCheckAnswer(b *testing.B) {
	c := memcachedController(b)
	p := &pass{obj: memcachedObject()}
	body := `{"children":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"m00042","labels":{"app":"memcached","bench":"m00042"}},` +
		`"spec":{"replicas":3,"selector":{"matchLabels":{"app":"memcached","bench":"m00042"}},"template":{"metadata":{"labels":{"app":"memcached","bench":"m00042"}},` +
		`"spec":{"containers":[{"name":"memcached","image":"memcached:1.6","ports":[{"containerPort":11211}]}]}}}}],` +
		`"status":{"observedSize":3,"deploymentName":"m00042"}}`
	resp, err := callbacks.DecodeResponse([]byte(body))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		desired, err := check.CheckChildren(p.obj, *resp.Children, c.op.Spec.Children, c.scopes(), c.op.Name)
		if err != nil || len(desired) != 1 {
			b.Fatalf("children: %v", err)
		}
		status, err := c.checkStatus(p, resp.Status)
		if err != nil || status == nil {
			b.Fatalf("status: %v, %v", status, err)
		}
	}
}
