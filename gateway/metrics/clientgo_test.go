package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opgate/opgate/gateway/metrics/metricstest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
)

// Two registries (two gateways in one process) both get client-go's
// metrics, fed by a queue and a REST client created after New.
func TestClientGoMetricsReachEveryRegistry(t *testing.T) {
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	for _, reg := range regs {
		if _, err := New(reg); err != nil {
			t.Fatalf("New: %v", err)
		}
	}
	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "metrics-test"})
	defer q.ShutDown()
	q.Add("a")
	q.Add("b")
	item, _ := q.Get()
	q.Done(item)
	q.AddRateLimited("c")

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Success"}`))
	}))
	defer api.Close()
	client, err := rest.RESTClientFor(&rest.Config{Host: api.URL, ContentConfig: rest.ContentConfig{
		GroupVersion: &schema.GroupVersion{Version: "v1"}, NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Get().AbsPath("/api/v1/namespaces/x/pods/y").Do(context.Background()).Error(); err != nil {
		t.Fatalf("request: %v", err)
	}

	for i, reg := range regs {
		fams := gather(t, reg)
		tests := []struct {
			family  string
			labels  map[string]string
			atLeast float64
		}{
			{"workqueue_adds_total", map[string]string{"name": "metrics-test"}, 2},
			{"workqueue_depth", map[string]string{"name": "metrics-test"}, 1},
			{"workqueue_work_duration_seconds", map[string]string{"name": "metrics-test"}, 1},
			{"workqueue_queue_duration_seconds", map[string]string{"name": "metrics-test"}, 1},
			{"workqueue_retries_total", map[string]string{"name": "metrics-test"}, 1},
			{"rest_client_requests_total", map[string]string{"code": "200", "method": "GET"}, 1},
			{"rest_client_request_duration_seconds", map[string]string{"verb": "GET"}, 1},
		}
		for _, tt := range tests {
			got, ok := metricstest.Value(fams[tt.family], tt.labels)
			if !ok || got < tt.atLeast {
				t.Errorf("registry %d: %s%v = %v (found %v), want at least %v", i, tt.family, tt.labels, got, ok, tt.atLeast)
			}
		}
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}
