// Package webui is the gateway's read-only web view under /ui/: its
// operators, their objects (failing first) and one object's whole state,
// the facts `gateway status` prints, rendered on the server by
// htmlWriter from the gateway's informer caches (a page view costs the
// API server nothing) and refreshed in the browser by a few lines of
// polling script. It shows no Secret contents and no handler credentials:
// only the report of gateway/inspect, which holds none.
package webui

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/inspect"
)

//go:embed static
var staticFS embed.FS

// ClusterScope stands for the namespace of a cluster-scoped object in an
// object page's path.
const ClusterScope = "-"

// DefaultRefresh is how often an open page reloads its content.
const DefaultRefresh = 2 * time.Second

// Config of the web view.
type Config struct {
	// View returns what the running operators see (runner.Gateway.View).
	View func() []engine.OperatorView
	// Clock is time.Now when nil.
	Clock func() time.Time
	// Refresh is DefaultRefresh when zero.
	Refresh time.Duration
	Logger  *slog.Logger
}

type ui struct {
	cfg Config
	// classifier remembers each object's decoded state by resourceVersion:
	// a page reloaded every 2 s decodes only what changed since.
	classifier inspect.Classifier
}

// page is a page's content, written by pages.go and objectpage.go.
type page interface {
	write(w *htmlWriter, u *ui)
}

// New returns the web view's handler, to be mounted at /ui.
func New(cfg Config) (http.Handler, error) {
	if cfg.View == nil {
		return nil, errors.New("webui: View is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	u := &ui{cfg: cfg}
	static, _ := fs.Sub(staticFS, "static")
	r := chi.NewRouter()
	r.Use(securityHeaders)
	r.Get("/", u.index)
	r.Get("/operators/{operator}", u.operator)
	r.Get("/operators/{operator}/objects/{namespace}/{name}", u.object)
	r.Handle("/static/*", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	return r, nil
}

// securityHeaders: no inline script or style, nothing from elsewhere, no
// framing; the page only talks to the gateway.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (u *ui) index(w http.ResponseWriter, r *http.Request) {
	u.render(w, http.StatusOK, u.indexPage())
}

func (u *ui) operator(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "operator")
	if msg := validOperator(name); msg != "" {
		u.fail(w, http.StatusBadRequest, msg)
		return
	}
	page, ok := u.operatorPage(name)
	if !ok {
		u.fail(w, http.StatusNotFound, fmt.Sprintf("this gateway runs no operator %q", name))
		return
	}
	u.render(w, http.StatusOK, page)
}

func (u *ui) object(w http.ResponseWriter, r *http.Request) {
	op, ns, name := chi.URLParam(r, "operator"), chi.URLParam(r, "namespace"), chi.URLParam(r, "name")
	if msg := validOperator(op) + validNamespace(ns) + validName(name); msg != "" {
		u.fail(w, http.StatusBadRequest, msg)
		return
	}
	if ns == ClusterScope {
		ns = ""
	}
	page, code, why := u.objectPage(op, ns, name)
	if code != http.StatusOK {
		u.fail(w, code, why)
		return
	}
	u.render(w, http.StatusOK, page)
}

func validOperator(name string) string {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Sprintf("operator name %q: %s. ", name, strings.Join(errs, "; "))
	}
	return ""
}

func validNamespace(ns string) string {
	if ns == ClusterScope {
		return ""
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Sprintf("namespace %q (%q for a cluster-scoped object): %s. ", ns, ClusterScope, strings.Join(errs, "; "))
	}
	return ""
}

func validName(name string) string {
	if errs := content.IsPathSegmentName(name); len(errs) > 0 || name == "" || len(name) > validation.DNS1123SubdomainMaxLength {
		return fmt.Sprintf("object name %q is not a valid name. ", name)
	}
	return ""
}

// render writes the page.
func (u *ui) render(w http.ResponseWriter, status int, p page) {
	var hw htmlWriter
	p.write(&hw, u)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(hw.b.Bytes())
}

func (u *ui) fail(w http.ResponseWriter, status int, msg string) {
	title := "Not here"
	if status == http.StatusServiceUnavailable {
		title = "Not known yet" // it may well be here
	}
	u.render(w, status, errorPage{Page: u.newPage(title), Error: strings.TrimSpace(msg)})
}
