package call

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
)

// memcachedRequest is an update of a memcached-like object as the engine
// sends it: the object with the metadata the API server sets, its old
// essence and the diff between them.
func memcachedRequest() *callbacks.Request {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "bench.opgate.dev/v1",
		"kind":       "Memcached",
		"metadata": map[string]any{
			"name": "m00042", "namespace": "bench", "uid": "4c8f7b1e-2f5a-4d3c-9a1b-0e6d5f4c3b2a",
			"resourceVersion": "123456", "generation": int64(2), "creationTimestamp": "2026-11-25T10:00:00Z",
			"labels":     map[string]any{"app": "memcached"},
			"finalizers": []any{"opgate.dev/memcached"},
		},
		"spec":   map[string]any{"size": int64(3)},
		"status": map[string]any{"observedSize": int64(1), "deploymentName": "m00042"},
	}}
	old := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "bench.opgate.dev/v1", "kind": "Memcached",
		"metadata": map[string]any{"name": "m00042", "namespace": "bench", "labels": map[string]any{"app": "memcached"}},
		"spec":     map[string]any{"size": int64(1)},
	}}
	return &callbacks.Request{
		UID: "0d6f4b5a3c2e1f0a", Event: callbacks.EventUpdate, Operator: "memcached", Callback: "update", Attempt: 1,
		Object: obj, Old: old,
		Diff: []callbacks.DiffOp{{Op: callbacks.OpChange, Path: "/spec/size", Old: json.RawMessage("1"), New: json.RawMessage("3")}},
	}
}

// memcachedAnswer is what the bench handler answers: one Deployment child
// and the status {observedSize, deploymentName}.
func memcachedAnswer(tb testing.TB) []byte {
	tb.Helper()
	labels := map[string]any{"app": "memcached", "bench": "m00042"}
	child := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "m00042", "labels": labels},
		"spec": map[string]any{
			"replicas": int64(3),
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name": "memcached", "image": "memcached:1.6",
					"ports": []any{map[string]any{"containerPort": int64(11211)}},
				}}},
			},
		},
	}}
	resp := callbacks.Children(child).WithStatus(map[string]any{"observedSize": int64(3), "deploymentName": "m00042"})
	body, err := json.Marshal(resp)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// fixedAnswer answers every request in memory with body, after reading
// the request's: the client's own cost without sockets or a server.
type fixedAnswer []byte

func (f fixedAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, req.Body)
	_ = req.Body.Close()
	return &http.Response{
		StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(f)), ContentLength: int64(len(f)), Request: req,
	}, nil
}

// BenchmarkCallMemcached is one signed call of a memcached-like update and
// the decoding and checking of its answer (one Deployment child and a
// status): "inMemory" is the client alone, "httptest" adds a real HTTP
// round trip to a handler in the same process.
func BenchmarkCallMemcached(b *testing.B) {
	body := memcachedAnswer(b)
	req := memcachedRequest()
	clock := func() time.Time { return now }
	ep := Endpoint{HMACSecret: []byte("whsec_c2VjcmV0LWtleS1vZi10aGUtaGFuZGxlcg=="), BearerToken: "token"}
	run := func(b *testing.B, c *Client, url string) {
		ep := ep
		ep.URL = url
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			resp, err := c.Call(ctx, ep, req)
			if err != nil || resp.Children == nil || len(*resp.Children) != 1 {
				b.Fatalf("call: %v", err)
			}
		}
	}
	b.Run("inMemory", func(b *testing.B) {
		c, err := New(Config{Clock: clock, Transport: fixedAnswer(body)})
		if err != nil {
			b.Fatal(err)
		}
		run(b, c, "http://handler.test/update")
	})
	b.Run("httptest", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}))
		defer srv.Close()
		c, err := New(Config{Clock: clock})
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseIdleConnections()
		run(b, c, srv.URL+"/update")
	})
}
