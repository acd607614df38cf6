package callbacks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// memcachedAnswer is what a memcached-like handler answers: one Deployment
// child and a status.
const memcachedAnswer = `{"children":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"m00042","labels":{"app":"memcached","bench":"m00042"}},` +
	`"spec":{"replicas":3,"selector":{"matchLabels":{"app":"memcached","bench":"m00042"}},"template":{"metadata":{"labels":{"app":"memcached","bench":"m00042"}},` +
	`"spec":{"containers":[{"name":"memcached","image":"memcached:1.6","ports":[{"containerPort":11211}]}]}}}}],` +
	`"status":{"deploymentName":"m00042","observedSize":3}}`

// BenchmarkDecodeResponse checks a memcached-like answer against the
// contract and decodes it.
func BenchmarkDecodeResponse(b *testing.B) {
	body := []byte(memcachedAnswer)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := DecodeResponse(body)
		if err != nil || resp.Children == nil {
			b.Fatal(err)
		}
	}
}

// memcachedUpdate is the update callback the gateway sends a memcached-like
// handler: the object (as the API server serves it, less managedFields),
// the last handled one, the diff and the Deployment child.
const memcachedUpdate = `{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"d-42","event":"update","operator":"bench","callback":"update","attempt":1,"deadline":"2036-12-01T16:53:40Z","object":{"apiVersion":"bench.opgate.dev/v1","kind":"Memcached","metadata":{"annotations":{"opgate.dev/state.bench":"{\"u\":\"5c060e3e-41c3-467e-8435-429f768e0646\",\"h\":\"f1ee10fb4db5b4c045954e5f\",\"e\":\"eyJzcGVjIjp7InNpemUiOjN9fQ==\",\"t\":\"2026-12-01T16:53:40Z\"}"},"creationTimestamp":"2026-12-01T16:53:36Z","finalizers":["opgate.dev/bench"],"generation":2,"name":"mc-00000","namespace":"gateway-fast-backlog","resourceVersion":"2973","uid":"5c060e3e-41c3-467e-8435-429f768e0646"},"spec":{"size":3},"status":{"deploymentName":"mc-00000","observedSize":3}},"old":{"apiVersion":"bench.opgate.dev/v1","kind":"Memcached","metadata":{"annotations":{"opgate.dev/state.bench":"{\"u\":\"5c060e3e-41c3-467e-8435-429f768e0646\",\"h\":\"f1ee10fb4db5b4c045954e5f\",\"e\":\"eyJzcGVjIjp7InNpemUiOjN9fQ==\",\"t\":\"2026-12-01T16:53:40Z\"}"},"creationTimestamp":"2026-12-01T16:53:36Z","finalizers":["opgate.dev/bench"],"generation":1,"name":"mc-00000","namespace":"gateway-fast-backlog","resourceVersion":"2973","uid":"5c060e3e-41c3-467e-8435-429f768e0646"},"spec":{"size":1},"status":{"deploymentName":"mc-00000","observedSize":3}},"diff":[{"op":"change","path":"/spec/size","old":1,"new":3}],"children":{"apps/v1/Deployment":{"mc-00000":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"creationTimestamp":"2026-12-01T16:53:38Z","generation":2,"labels":{"app":"memcached","bench":"mc-00000","opgate.dev/operator":"bench"},"name":"mc-00000","namespace":"gateway-fast-backlog","ownerReferences":[{"apiVersion":"bench.opgate.dev/v1","blockOwnerDeletion":true,"controller":true,"kind":"Memcached","name":"mc-00000","uid":"5c060e3e-41c3-467e-8435-429f768e0646"}],"resourceVersion":"2944","uid":"daa7dad8-016d-4965-9a55-d092b29d6cee"},"spec":{"progressDeadlineSeconds":600,"replicas":3,"revisionHistoryLimit":10,"selector":{"matchLabels":{"app":"memcached","bench":"mc-00000"}},"strategy":{"rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"},"type":"RollingUpdate"},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"memcached","bench":"mc-00000"}},"spec":{"containers":[{"image":"memcached:1.6","imagePullPolicy":"IfNotPresent","name":"memcached","ports":[{"containerPort":11211,"protocol":"TCP"}],"resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}},"status":{}}}}}`

// BenchmarkMuxServesMemcachedUpdate serves the update callback through a
// Mux to a handler that answers one Deployment and a status, as the bench
// handler does: the handler side of every callback's cost.
func BenchmarkMuxServesMemcachedUpdate(b *testing.B) {
	mux := NewMux()
	mux.Handle("/update", func(_ context.Context, req *Request) (*Response, error) {
		size, err := req.ObjectInt64("spec", "size")
		if err != nil {
			return nil, Permanent(err.Error())
		}
		name := req.Object.GetName()
		labels := map[string]any{"app": "memcached", "bench": name}
		child := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": name, "labels": labels},
			"spec": map[string]any{"replicas": size, "selector": map[string]any{"matchLabels": labels},
				"template": map[string]any{"metadata": map[string]any{"labels": labels},
					"spec": map[string]any{"containers": []any{map[string]any{"name": "memcached", "image": "memcached:1.6",
						"ports": []any{map[string]any{"containerPort": int64(11211)}}}}}}},
		}}
		return Children(child).WithStatus(map[string]any{"observedSize": size, "deploymentName": name}), nil
	})
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/update", strings.NewReader(memcachedUpdate)))
		if w.Code != http.StatusOK {
			b.Fatalf("%d: %s", w.Code, w.Body)
		}
	}
}
