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

// dashboardQueries reads the queries of the Grafana dashboard: every
// panel's targets and every templating query but the job variable's, whose
// query it returns apart.
func dashboardQueries(t *testing.T) (queries []string, jobs string) {
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
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries = append(queries, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		switch {
		case v.Type == "query" && v.Name == "job":
			jobs = v.Definition
		case v.Type == "query":
			queries = append(queries, v.Definition)
		}
	}
	return queries, jobs
}

var (
	// Parts of a PromQL expression that are not metric names.
	labelMatchers = regexp.MustCompile(`\{[^}]*\}`)
	grouping      = regexp.MustCompile(`\b(by|without)\s*\([^)]*\)`)
	ranges        = regexp.MustCompile(`\[[^\]]*\]`)
	labelValues   = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*\s*(?:\{[^}]*\})?)\s*,[^)]*\)`)
	// A metric name and its label matchers, if any; a matcher block on
	// its own is matched (and skipped) first so that label names in it are
	// not taken for metrics.
	selector    = regexp.MustCompile(`\{[^}]*\}|([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?`)
	identifier  = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlWords = map[string]bool{"sum": true, "max": true, "min": true, "avg": true, "count": true, "rate": true, "irate": true,
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
	queries, _ := dashboardQueries(t)
	for _, q := range queries {
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
	for _, want := range []string{"opgate_objects", "opgate_operator_ready", "opgate_leader", "workqueue_depth", "workqueue_adds_total",
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

// selectors are the metric selectors of one query: each metric name with
// its label matchers ("" when it has none).
func selectors(expr string) [][2]string {
	expr = labelValues.ReplaceAllString(expr, "$1")
	for _, re := range []*regexp.Regexp{grouping, ranges} {
		expr = re.ReplaceAllString(expr, " ")
	}
	var out [][2]string
	for _, m := range selector.FindAllStringSubmatch(expr, -1) {
		if m[1] != "" && !promqlWords[m[1]] {
			out = append(out, [2]string{m[1], m[2]})
		}
	}
	return out
}

// jobFilter is the matcher every selector of the dashboard carries.
const jobFilter = `job=~"$job"`

// Other components scraped by the same Prometheus export rest_client_* and
// workqueue_* too (client-go's), and an operator's name may be a workqueue
// name elsewhere: every selector carries the job variable, whose values
// come from a metric only the gateway exports.
func TestDashboardQueriesOnlyTheGatewaysJobs(t *testing.T) {
	queries, jobs := dashboardQueries(t)
	if !regexp.MustCompile(`^label_values\(\s*(opgate_[a-z_]+|\{__name__=~"opgate_[^"]*"\})\s*,\s*job\s*\)$`).MatchString(jobs) {
		t.Errorf("the job variable's query is %q, want label_values of the gateway's own metrics (opgate_*), job", jobs)
	}
	for _, q := range queries {
		sels := selectors(q)
		if len(sels) == 0 {
			t.Errorf("query %q has no selector", q)
		}
		for _, sel := range sels {
			if !strings.Contains(sel[1], jobFilter) {
				t.Errorf("selector %s%s of query %q lacks %s: it may read other components' series", sel[0], sel[1], q, jobFilter)
			}
		}
	}
}

func TestSelectorsOfQueries(t *testing.T) {
	tests := []struct {
		expr string
		want [][2]string
	}{
		{`sum by (name) (rate(workqueue_adds_total{name=~"$operator", job=~"$job"}[$__rate_interval]))`,
			[][2]string{{"workqueue_adds_total", `{name=~"$operator", job=~"$job"}`}}},
		{`sum by (code) (rate(rest_client_requests_total[5m]))`, [][2]string{{"rest_client_requests_total", ""}}},
		{`label_values(opgate_objects{job=~"$job"}, operator)`, [][2]string{{"opgate_objects", `{job=~"$job"}`}}},
		{`max by (identity) (opgate_leader{job="a"}) or on() up`, [][2]string{{"opgate_leader", `{job="a"}`}, {"up", ""}}},
	}
	for _, tt := range tests {
		got := selectors(tt.expr)
		if len(got) != len(tt.want) {
			t.Errorf("selectors(%q) = %q, want %q", tt.expr, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("selectors(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		}
	}
}
