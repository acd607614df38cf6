package metrics

import (
	"context"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientmetrics "k8s.io/client-go/tools/metrics"
	"k8s.io/client-go/util/workqueue"
)

// client-go reports its work queues and REST requests through hooks that
// are process-wide and can be set once only (workqueue.SetProvider,
// clientmetrics.Register). So these collectors are created once per process
// and registered on every registry that asks (RegisterClientGo): several
// gateways in one process (the integration tests) share their values.
var (
	clientGoOnce sync.Once
	clientGo     *clientGoCollectors
)

type clientGoCollectors struct {
	depth, unfinished, longest *prometheus.GaugeVec
	adds, retries              *prometheus.CounterVec
	queueLatency, workDuration *prometheus.HistogramVec
	requests                   *prometheus.CounterVec
	requestLatency             *prometheus.HistogramVec
}

func (c *clientGoCollectors) all() []prometheus.Collector {
	return []prometheus.Collector{c.depth, c.unfinished, c.longest, c.adds, c.retries,
		c.queueLatency, c.workDuration, c.requests, c.requestLatency}
}

// RegisterClientGo registers client-go's work queue and REST client
// metrics on reg, installing the hooks that feed them the first time it is
// called in the process. Only queues created after the first call report:
// call it before starting any informer or queue. Work queues are labelled
// by name: an operator's queue is named after the operator, the registry's
// "webhookoperators".
func RegisterClientGo(reg prometheus.Registerer) error {
	clientGoOnce.Do(func() {
		clientGo = newClientGoCollectors()
		workqueue.SetProvider(queueProvider{clientGo})
		clientmetrics.Register(clientmetrics.RegisterOpts{
			RequestLatency: requestLatency{clientGo.requestLatency},
			RequestResult:  requestResult{clientGo.requests},
		})
	})
	for _, c := range clientGo.all() {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func newClientGoCollectors() *clientGoCollectors {
	name := []string{"name"}
	return &clientGoCollectors{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "workqueue_depth", Help: "Current depth of the work queue.",
		}, name),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workqueue_adds_total", Help: "Adds handled by the work queue.",
		}, name),
		queueLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "workqueue_queue_duration_seconds", Help: "How long an item stays in the work queue before it is processed.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10),
		}, name),
		workDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "workqueue_work_duration_seconds", Help: "How long processing an item from the work queue takes.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10),
		}, name),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "workqueue_unfinished_work_seconds", Help: "Seconds of work in progress not yet observed by work_duration; large values mean stuck workers.",
		}, name),
		longest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "workqueue_longest_running_processor_seconds", Help: "Seconds the longest running processor of the work queue has been running.",
		}, name),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workqueue_retries_total", Help: "Rate-limited re-adds (retries) handled by the work queue.",
		}, name),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rest_client_requests_total", Help: "Requests to the Kubernetes API server by status code, method and host.",
		}, []string{"code", "method", "host"}),
		requestLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rest_client_request_duration_seconds", Help: "Latency of requests to the Kubernetes API server by verb and host.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"verb", "host"}),
	}
}

// queueProvider is client-go's workqueue.MetricsProvider.
type queueProvider struct{ c *clientGoCollectors }

func (p queueProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return p.c.depth.WithLabelValues(name)
}
func (p queueProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return p.c.adds.WithLabelValues(name)
}
func (p queueProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return p.c.queueLatency.WithLabelValues(name)
}
func (p queueProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return p.c.workDuration.WithLabelValues(name)
}
func (p queueProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.c.unfinished.WithLabelValues(name)
}
func (p queueProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.c.longest.WithLabelValues(name)
}
func (p queueProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return p.c.retries.WithLabelValues(name)
}

// requestLatency drops the URL path: objects' names would make a series
// per object.
type requestLatency struct{ h *prometheus.HistogramVec }

func (r requestLatency) Observe(_ context.Context, verb string, u url.URL, latency time.Duration) {
	r.h.WithLabelValues(verb, u.Host).Observe(latency.Seconds())
}

type requestResult struct{ c *prometheus.CounterVec }

func (r requestResult) Increment(_ context.Context, code, method, host string) {
	r.c.WithLabelValues(code, method, host).Inc()
}
