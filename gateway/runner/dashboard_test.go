package runner

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
)

const dashboardFile = "../../charts/opgate/dashboards/opgate.json"

// describingRegisterer records the name of every metric registered.
type describingRegisterer struct {
	prometheus.Registerer
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describingRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return d.Registerer.Register(c)
}

// dashboard reads the queries of the Grafana dashboard: every panel's
// targets and every templating query.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, v.Definition)
		}
	}
	return out
}

var (
	// Parts of a PromQL expression that are not metric names.
	labelMatchers = regexp.MustCompile(`\{[^}]*\}`)
	grouping      = regexp.MustCompile(`\b(by|without)\s*\([^)]*\)`)
	ranges        = regexp.MustCompile(`\[[^\]]*\]`)
	labelValues   = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)`)
	identifier    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlWords   = map[string]bool{"sum": true, "max": true, "min": true, "avg": true, "count": true, "rate": true, "irate": true,
		"increase": true, "histogram_quantile": true, "topk": true, "bottomk": true, "and": true, "or": true, "unless": true, "on": true, "ignoring": true}
)

// metricNames are the metric names one query reads.
func metricNames(expr string) []string {
	expr = labelValues.ReplaceAllString(expr, "$1")
	for _, re := range []*regexp.Regexp{labelMatchers, grouping, ranges} {
		expr = re.ReplaceAllString(expr, " ")
	}
	var out []string
	for _, id := range identifier.FindAllString(expr, -1) {
		if !promqlWords[id] {
			out = append(out, id)
		}
	}
	return out
}

// Every metric the dashboard queries is one the gateway registers, so that
// a renamed metric cannot leave a panel silently empty.
func TestDashboardQueriesOnlyGatewayMetrics(t *testing.T) {
	reg := &describingRegisterer{Registerer: prometheus.NewRegistry(), names: map[string]bool{}}
	// No API server is contacted: New only builds clients.
	if _, err := New(&rest.Config{Host: "http://127.0.0.1:1"}, Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		names := metricNames(q)
		if len(names) == 0 {
			t.Errorf("query %q reads no metric", q)
		}
		for _, n := range names {
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suffix); ok && reg.names[b] {
					base = b
				}
			}
			if !reg.names[base] {
				t.Errorf("the dashboard queries %s, which the gateway does not register (query %q)", n, q)
			}
			used[base] = true
		}
	}
	// And the families this dashboard is for are all on it.
	var missing []string
	for _, want := range []string{"opgate_objects", "opgate_leader", "workqueue_depth", "workqueue_adds_total",
		"workqueue_queue_duration_seconds", "workqueue_work_duration_seconds", "workqueue_retries_total",
		"rest_client_requests_total", "rest_client_request_duration_seconds"} {
		if !used[want] {
			missing = append(missing, want)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard shows no panel of %v", missing)
	}
}

func TestMetricNamesOfQueries(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{`sum by (state) (opgate_objects{operator=~"$operator"})`, "opgate_objects"},
		{`histogram_quantile(0.99, sum by (name, le) (rate(workqueue_work_duration_seconds_bucket{name=~"x"}[$__rate_interval])))`, "workqueue_work_duration_seconds_bucket"},
		{`label_values(opgate_objects, operator)`, "opgate_objects"},
		{`max by (identity) (opgate_leader) or on() vector_typo`, "opgate_leader vector_typo"},
	}
	for _, tt := range tests {
		if got := strings.Join(metricNames(tt.expr), " "); got != tt.want {
			t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}
