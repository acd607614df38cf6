package runner

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opgate/opgate/gateway/inspect"
)

// objectsCollector computes opgate_objects{operator,state} at scrape time
// from the operators' informer caches, classified by gateway/inspect as
// `gateway status` and the web view classify: the three never disagree.
// It remembers each object's decoded state until its resourceVersion
// moves, so a scrape decodes only what changed since the last one.
// opgate_operator_ready{operator,reason} comes from the same view: an
// operator whose caches have not synced has no opgate_objects, and an
// alert needs a series that says it is not running.
type objectsCollector struct {
	g          *Gateway
	desc       *prometheus.Desc
	ready      *prometheus.Desc
	classifier inspect.Classifier
}

func newObjectsCollector(g *Gateway) *objectsCollector {
	return &objectsCollector{g: g, desc: prometheus.NewDesc("opgate_objects",
		"Watched objects by operator and state (settled, pending, failing, backing_off, permanently_failed, deleting), from the informer caches at scrape time.",
		[]string{"operator", "state"}, nil),
		ready: prometheus.NewDesc("opgate_operator_ready",
			"1 while the operator runs (its Ready condition True), else 0; reason is its Ready reason (Running, CacheNotSynced, KindNotFound, SecretUnreadable, ...).",
			[]string{"operator", "reason"}, nil)}
}

func (c *objectsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.ready
}

func (c *objectsCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.g.deps.Clock
	if now == nil {
		now = time.Now
	}
	views := c.g.View()
	names := make(map[string]bool, len(views))
	for _, v := range views {
		ready := 0.0
		if v.Ready {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready, v.Operator.Name, v.Reason)
		if !v.Synced {
			continue // its objects are not known: no zeros that look healthy
		}
		names[v.Operator.Name] = true
		report := c.classifier.Summarize(v.Operator, inspect.Readiness{Ready: v.Ready}, v.Objects, now())
		for _, s := range inspect.States {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(report.States[s]), v.Operator.Name, string(s))
		}
	}
	c.classifier.Forget(func(operator string) bool { return names[operator] })
}
