// Package metricstest reads values out of gathered or scraped Prometheus
// metric families, for tests of the gateway's metrics.
package metricstest

import dto "github.com/prometheus/client_model/go"

// Value is the value of the first series of f carrying labels (others may
// be present): a counter's or gauge's value, a histogram's sample count.
// ok is false when f is nil or no series matches.
func Value(f *dto.MetricFamily, labels map[string]string) (float64, bool) {
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}
