package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// requestCounts counts API requests by "VERB resource[/subresource]",
// verbs as kube-apiserver's apiserver_request_total names them (LIST,
// GET, WATCH, POST, PUT, PATCH, APPLY, DELETE).
type requestCounts map[string]float64

// benchResources are the resources the workload touches; requests to the
// others (leases, discovery, the garbage collector's bookkeeping) are not
// counted.
var benchResources = map[string]bool{resource: true, "deployments": true, "events": true}

// etcdTypes are the storage types of the bench resources, as
// etcd_request_duration_seconds names them.
var etcdTypes = map[string]string{resource + "." + group: resource, "deployments.apps": "deployments"}

// watchResources are the bench resources by the watch metrics' label:
// kube-apiserver 1.32 names the kind, later ones the resource.
var watchResources = map[string]string{kind: resource, "Deployment": "deployments", resource: resource, "deployments": "deployments"}

// apiServerCounts are kube-apiserver's counters for the bench resources.
type apiServerCounts struct {
	// api: apiserver_request_total by "VERB resource[/subresource]".
	api requestCounts
	// etcd: its requests to etcd ("get memcacheds", "update deployments"):
	// more than API requests call for are writes the API server tried
	// again on a stale cached copy or a lost race.
	etcd requestCounts
	// watch: the events it sent to watchers ("events deployments"), every
	// watcher's (the system's, the garbage collector's, the harness's
	// tracker's), the bytes it encoded for them ("bytes deployments"):
	// once per event and encoding, so watchers sharing an encoding add
	// none, and one taking JSON where the others take protobuf adds a
	// whole event; and how many encodings that was ("encodings
	// deployments").
	watch requestCounts
}

// scrapeAPIServer reads kube-apiserver's /metrics.
func scrapeAPIServer(ctx context.Context, cfg *rest.Config) (apiServerCounts, error) {
	c := apiServerCounts{api: requestCounts{}, etcd: requestCounts{}, watch: requestCounts{}}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return c, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/metrics", nil)
	if err != nil {
		return c, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return c, fmt.Errorf("scrape kube-apiserver metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("scrape kube-apiserver metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		name, _, ok := bytes.Cut(line, []byte("{"))
		if !ok {
			continue
		}
		metric := string(name)
		switch metric {
		case "apiserver_request_total", "etcd_request_duration_seconds_count",
			"apiserver_watch_events_total", "apiserver_watch_events_sizes_sum", "apiserver_watch_events_sizes_count",
			"apiserver_terminated_watchers_total":
		default:
			continue
		}
		labels, value, err := parseSample(string(line))
		if err != nil {
			return c, err
		}
		switch metric {
		case "apiserver_request_total":
			if benchResources[labels["resource"]] {
				c.api[requestKey(labels["verb"], labels["resource"], labels["subresource"])] += value
			}
		case "etcd_request_duration_seconds_count":
			if storage, ok := etcdTypes[labels["type"]]; ok {
				c.etcd[labels["operation"]+" "+storage] += value
			}
		case "apiserver_terminated_watchers_total":
			// Watchers kube-apiserver closed for not keeping up: labelled
			// "memcacheds.bench.opgate.dev" (1.32) or by group and resource.
			res, _, _ := strings.Cut(labels["resource"], ".")
			if res, ok := watchResources[res]; ok {
				c.watch["terminated "+res] += value
			}
		case "apiserver_watch_events_total", "apiserver_watch_events_sizes_sum", "apiserver_watch_events_sizes_count":
			res, ok := watchResources[labels["kind"]]
			if !ok {
				res, ok = watchResources[labels["resource"]]
			}
			switch {
			case !ok:
			case metric == "apiserver_watch_events_total":
				c.watch["events "+res] += value
			case metric == "apiserver_watch_events_sizes_count":
				c.watch["encodings "+res] += value
			default:
				c.watch["bytes "+res] += value
			}
		}
	}
	return c, sc.Err()
}

func requestKey(verb, resource, subresource string) string {
	if subresource != "" {
		resource += "/" + subresource
	}
	return verb + " " + resource
}

// parseSample splits `name{k="v",...} value` (label values in these
// metrics hold no quotes or commas).
func parseSample(line string) (map[string]string, float64, error) {
	open, end := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
	if open < 0 || end < open {
		return nil, 0, fmt.Errorf("metric line %q: no labels", line)
	}
	labels := map[string]string{}
	for _, pair := range strings.Split(line[open+1:end], ",") {
		k, v, ok := strings.Cut(pair, "=")
		if ok {
			labels[k] = strings.Trim(v, `"`)
		}
	}
	value, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
	if err != nil {
		return nil, 0, fmt.Errorf("metric line %q: %w", line, err)
	}
	return labels, value, nil
}

// per is c divided by n: counts per object.
func (c requestCounts) per(n int) requestCounts {
	d := make(requestCounts, len(c))
	for k, v := range c {
		d[k] = v / float64(n)
	}
	return d
}

// minus is c - o, dropping zeroes.
func (c requestCounts) minus(o requestCounts) requestCounts {
	d := requestCounts{}
	for k, v := range c {
		if v-o[k] > 0 {
			d[k] = v - o[k]
		}
	}
	return d
}

// countingTransport counts the harness's own requests the way the API
// server does, so they can be taken out of its counters.
type countingTransport struct {
	next   http.RoundTripper
	mu     sync.Mutex
	counts requestCounts
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if key, ok := classify(req); ok {
		t.mu.Lock()
		t.counts[key]++
		t.mu.Unlock()
	}
	return t.next.RoundTrip(req)
}

func (t *countingTransport) snapshot() requestCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := requestCounts{}
	for k, v := range t.counts {
		c[k] = v
	}
	return c
}

// classify names a request as apiserver_request_total would.
func classify(req *http.Request) (string, bool) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	// /api/v1/namespaces/ns/res[/name[/sub]] or /apis/g/v/namespaces/ns/res[/name[/sub]]
	i := 2
	if len(parts) > 0 && parts[0] == "apis" {
		i = 3
	}
	if len(parts) > i+1 && parts[i] == "namespaces" {
		i += 2
	}
	if len(parts) <= i || !benchResources[parts[i]] {
		return "", false
	}
	res, named, sub := parts[i], len(parts) > i+1, ""
	if len(parts) > i+2 {
		sub = parts[i+2]
	}
	verb := req.Method
	switch {
	case req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true":
		verb = "WATCH"
	case req.Method == http.MethodGet && !named:
		verb = "LIST"
	case req.Method == http.MethodPatch && strings.Contains(req.Header.Get("Content-Type"), "apply-patch"):
		verb = "APPLY"
	}
	return requestKey(verb, res, sub), true
}
