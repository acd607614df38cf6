package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/server"
)

func TestParseRecordRef(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "", want: "/"},
		{in: "ops/opgate-gateway", want: "ops/opgate-gateway"},
		{in: "opgate-gateway", wantErr: true},
		{in: "/name", wantErr: true},
		{in: "ns/", wantErr: true},
		{in: "a/b/c", wantErr: true},
	} {
		got, err := parseRecordRef(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseRecordRef(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("parseRecordRef(%q) = %q, want %q", tt.in, got.String(), tt.want)
		}
	}
}

func TestUIFlagTurnsTheWebViewOnAndOff(t *testing.T) {
	for _, tt := range []struct {
		ui   bool
		want int
	}{{true, http.StatusOK}, {false, http.StatusNotFound}} {
		o := runOptions{ui: tt.ui}
		routes, err := o.opsRoutes(prometheus.NewRegistry(), nil, func() []engine.OperatorView { return nil }, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		server.NewRouter(routes).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil))
		if rec.Code != tt.want {
			t.Errorf("--ui=%v: GET /ui/ answered %d, want %d", tt.ui, rec.Code, tt.want)
		}
	}
}
