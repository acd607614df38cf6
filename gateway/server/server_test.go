package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRouterServesHealthMetricsAndSchemas(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "opgate_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	ready := errors.New("informers not synced")
	srv := httptest.NewServer(NewRouter(Config{Gatherer: reg, Ready: func() error { return ready }}))
	defer srv.Close()

	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 503, "informers not synced"},
		{"/metrics", 200, "opgate_test_total 1"},
		{"/schemas/response.json", 200, `"requeueAfter"`},
		{"/schemas/request.json", 200, `"CallbackRequest"`},
		{"/schemas/webhookoperator.json", 200, `"WebhookOperator"`},
		{"/schemas/nope.json", 404, ""},
		{"/ui/", 404, ""}, // no web view configured (gateway run --ui=false)
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body does not contain %q:\n%.300s", tt.wantBody, body)
			}
		})
	}
}

func TestProfilesAreServedOnlyWhenAskedFor(t *testing.T) {
	for _, tt := range []struct {
		profiling bool
		wantCode  int
	}{{false, 404}, {true, 200}} {
		srv := httptest.NewServer(NewRouter(Config{Gatherer: prometheus.NewRegistry(), Profiling: tt.profiling}))
		resp, err := http.Get(srv.URL + "/debug/pprof/heap")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != tt.wantCode {
			t.Errorf("profiling=%v: GET /debug/pprof/heap = %d, want %d", tt.profiling, resp.StatusCode, tt.wantCode)
		}
	}
}
