// Package server is the gateway's operational HTTP surface on one chi
// router: /metrics, /healthz, /readyz and the published contract under
// /schemas/, the web view under /ui/ and pprof under /debug/pprof/ when
// configured.
package server

import (
	"io/fs"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// Config of the router.
type Config struct {
	Gatherer prometheus.Gatherer
	// Ready reports whether the gateway is ready to serve (nil: always).
	Ready func() error
	// UI, when not nil, is the web view (gateway/webui), served under /ui/.
	UI http.Handler
	// Profiling serves Go's pprof profiles under /debug/pprof/: off unless
	// asked for, since a profile shows the process's internals.
	Profiling bool
}

// NewRouter returns the operational router.
func NewRouter(cfg Config) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	r.Get("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Ready != nil {
			if err := cfg.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	r.Handle("/metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	schemas, _ := fs.Sub(callbacks.SchemaFS, "schema")
	r.Handle("/schemas/*", http.StripPrefix("/schemas/", http.FileServerFS(schemas)))
	r.Get("/schemas/webhookoperator.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/schema+json")
		_, _ = w.Write(spec.JSONSchema())
	})
	if cfg.UI != nil {
		r.Mount("/ui", cfg.UI)
	}
	if cfg.Profiling {
		r.Mount("/debug", middleware.Profiler())
	}
	return r
}
