// Package metrics defines the gateway's Prometheus metrics on an injected
// registerer (no global registry), client-go's work queue and REST client
// metrics included (see RegisterClientGo).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's collectors.
type Metrics struct {
	CallbackRequests  *prometheus.CounterVec   // operator, callback, event, outcome
	CallbackDuration  *prometheus.HistogramVec // operator, callback, event
	EventLatency      *prometheus.HistogramVec // operator, event: object change seen → callback answered
	Events            *prometheus.CounterVec   // operator, type: Events handed to the recorder
	Retries           *prometheus.CounterVec   // operator, callback, class
	ApplyResults      *prometheus.CounterVec   // operator, action, result
	InFlight          *prometheus.GaugeVec     // operator
	FinalizersPending *prometheus.GaugeVec     // operator
	WatchedObjects    *prometheus.GaugeVec     // operator
	Leader            *prometheus.GaugeVec     // identity: 1 leading, 0 standing by (leader election only)
}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		CallbackRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opgate_callback_requests_total", Help: "Callback requests by outcome (success, temporary, permanent).",
		}, []string{"operator", "callback", "event", "outcome"}),
		CallbackDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "opgate_callback_duration_seconds", Help: "Time from sending a callback request to its answer.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"operator", "callback", "event"}),
		EventLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "opgate_event_to_callback_seconds", Help: "Time from the gateway seeing a changed spec to the handler's answer applied (children and status written).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"operator", "event"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opgate_callback_retries_total", Help: "Failed callbacks scheduled for retry or given up, by class.",
		}, []string{"operator", "callback", "class"}),
		ApplyResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opgate_apply_total", Help: "Writes to the API server by action (child, prune, status, finalizer, state, release) and result.",
		}, []string{"operator", "action", "result"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opgate_events_total", Help: "Kubernetes Events (handlers' and the gateway's own) handed to client-go's recorder, which writes them asynchronously, by type.",
		}, []string{"operator", "type"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "opgate_callbacks_in_flight", Help: "Callback requests currently in flight.",
		}, []string{"operator"}),
		FinalizersPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "opgate_finalizers_pending", Help: "Objects being deleted whose finalizer the gateway still holds.",
		}, []string{"operator"}),
		WatchedObjects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "opgate_watched_objects", Help: "Objects the operator watches.",
		}, []string{"operator"}),
		Leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "opgate_leader", Help: "1 while this replica holds the leader election Lease and runs the operators, 0 while it stands by.",
		}, []string{"identity"}),
	}
	for _, c := range []prometheus.Collector{m.CallbackRequests, m.CallbackDuration, m.EventLatency, m.Retries,
		m.ApplyResults, m.Events, m.InFlight, m.FinalizersPending, m.WatchedObjects, m.Leader} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	if err := RegisterClientGo(reg); err != nil {
		return nil, err
	}
	return m, nil
}

type partialDeleter interface {
	DeletePartialMatch(prometheus.Labels) int
}

// Stopped drops the gauges of an operator that stopped running: they
// describe a running one. Its counters stay, so that a restart (an edit of
// its spec) does not reset them.
func (m *Metrics) Stopped(operator string) {
	deleteOperator(operator, m.InFlight, m.FinalizersPending, m.WatchedObjects)
}

// Forget drops every series of an operator that was removed.
func (m *Metrics) Forget(operator string) {
	m.Stopped(operator)
	deleteOperator(operator, m.CallbackRequests, m.CallbackDuration, m.EventLatency, m.Retries, m.ApplyResults, m.Events)
}

func deleteOperator(operator string, vecs ...partialDeleter) {
	l := prometheus.Labels{"operator": operator}
	for _, v := range vecs {
		v.DeletePartialMatch(l)
	}
}
