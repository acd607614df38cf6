package webui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

// BenchmarkOperatorPage renders /ui/operators/memcached over 10 000
// settled objects, as a tab left open reloads it every 2 s.
func BenchmarkOperatorPage(b *testing.B) {
	t := &testing.T{}
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{
			Watch:     spec.WatchSpec{APIVersion: "cache.example.com/v1alpha1", Kind: "Memcached"},
			Callbacks: []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}},
		},
	}
	objects := make([]*unstructured.Unstructured, 10000)
	for i := range objects {
		objects[i] = memcached(t, op, "shop", fmt.Sprintf("m%05d", i), nil)
		objects[i].SetResourceVersion(fmt.Sprint(i + 1))
	}
	h, err := New(Config{Clock: func() time.Time { return now }, View: func() []engine.OperatorView {
		return []engine.OperatorView{{Operator: op, Ready: true, Reason: spec.ReasonRunning, Synced: true, Objects: objects}}
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/operators/memcached", nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String()[:min(200, rec.Body.Len())])
		}
	}
}
