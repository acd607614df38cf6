package webui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/inspect"
	"github.com/opgate/opgate/gateway/server"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const hostileMessage = `<script>alert("x")</script> & "quoted"`

// memcached is an object of the test operator; progress, when not nil, is
// a failing callback's retry state at the object's current essence.
func memcached(t *testing.T, op *spec.WebhookOperator, ns, name string, progress *state.Progress) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": "uid-" + name},
		"spec":     map[string]any{"size": int64(3)},
	}}
	st := &state.State{UID: string(obj.GetUID())}
	if err := st.SetHandled(essence.Of(obj), state.DefaultEssenceCap); err != nil {
		t.Fatal(err)
	}
	if progress != nil {
		progress.Digest = essence.Digest(essence.Of(obj))
		st.Progress = map[string]*state.Progress{"create": progress}
	}
	v, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	obj.SetAnnotations(map[string]string{op.StateAnnotation(): v})
	return obj
}

func testServer(t *testing.T) *httptest.Server {
	t.Helper()
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{
			Watch:     spec.WatchSpec{APIVersion: "cache.example.com/v1alpha1", Kind: "Memcached"},
			Callbacks: []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}},
		},
	}
	objects := []*unstructured.Unstructured{
		memcached(t, op, "shop", "alpha", nil),
		memcached(t, op, "shop", "zeta", &state.Progress{Attempts: 3, First: now.Add(-time.Minute), Next: now.Add(30 * time.Second),
			Message: hostileMessage, Reason: "HandlerError"}),
	}
	ui, err := New(Config{Clock: func() time.Time { return now }, View: func() []engine.OperatorView {
		return []engine.OperatorView{{Operator: op, Ready: true, Reason: spec.ReasonRunning, Synced: true, Objects: objects}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.NewRouter(server.Config{UI: ui}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func TestPagesShowStateFailingFirstEscaped(t *testing.T) {
	srv := testServer(t)
	tests := []struct {
		path    string
		want    []string // in this order
		notWant []string
	}{
		{path: "/ui/", want: []string{`href="/ui/operators/memcached"`, "cache.example.com/v1alpha1/Memcached", `<td class="state-backing_off">1</td>`, `<td class="state-settled">1</td>`}},
		{path: "/ui/operators/memcached", want: []string{
			`data-object="shop/zeta" data-state="backing_off"`, "HandlerError", "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quoted&#34;", "in 30s",
			`data-object="shop/alpha" data-state="settled"`,
		}},
		{path: "/ui/operators/memcached/objects/shop/zeta", want: []string{
			`id="state" class="state-backing_off"`, "create, attempt 3", `id="last-error"`, "&lt;script&gt;", "2026-11-30T12:00:30Z", "opgate.dev/memcached",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, header, body := get(t, srv.URL+tt.path)
			if code != http.StatusOK {
				t.Fatalf("GET %s: %d\n%s", tt.path, code, body)
			}
			if csp := header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("Content-Security-Policy = %q", csp)
			}
			if strings.Contains(body, "<script>alert") {
				t.Errorf("the handler's message reached the page unescaped:\n%s", body)
			}
			rest := body
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("GET %s: %q missing (or out of order) in\n%s", tt.path, w, body)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestPathParamsValidated(t *testing.T) {
	srv := testServer(t)
	tests := []struct {
		path string
		code int
		text string
	}{
		{"/ui/operators/Not_A_Name", http.StatusBadRequest, "operator name"},
		{"/ui/operators/memcached/objects/Shop!/zeta", http.StatusBadRequest, "namespace"},
		{"/ui/operators/memcached/objects/shop/a%25b", http.StatusBadRequest, "object name"},
		{"/ui/operators/nginx", http.StatusNotFound, "no operator"},
		{"/ui/operators/memcached/objects/shop/gone", http.StatusNotFound, "watches no object shop/gone"},
		{"/ui/operators/memcached/objects/-/zeta", http.StatusNotFound, "watches no object zeta"},
		{"/ui/static/live.js", http.StatusOK, "DOMParser"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, _, body := get(t, srv.URL+tt.path)
			if code != tt.code || !strings.Contains(body, tt.text) {
				t.Errorf("GET %s: %d, want %d with %q:\n%s", tt.path, code, tt.code, tt.text, body)
			}
		})
	}
}

// The object page says which callback the round owes the essence now, and
// the essence it acted on, as `gateway status` does.
func TestObjectPageSaysWhichCallbackIsOwedWhichEssence(t *testing.T) {
	u := &ui{cfg: Config{Clock: func() time.Time { return now }}}
	p := objectPage{Page: Page{Title: "t", Now: now}, Detail: inspect.Detail{
		Object: inspect.Object{Namespace: "shop", Name: "cache", State: inspect.Pending},
		Round: &inspect.Round{Event: "update", Done: []string{}, Waiting: []string{"resize"},
			Owed: []inspect.Owed{{Callback: "resize", ActedOn: "5e6f7a8b"}}}}}
	var w htmlWriter
	p.write(&w, u)
	for _, want := range []string{
		"<dt>round</dt><dd>update: done none · waiting resize </dd>",
		"<dt>owed</dt><dd>resize the essence now, having acted on <code>5e6f7a8b</code>, a change taken back (its old)</dd>",
	} {
		if !strings.Contains(w.b.String(), want) {
			t.Errorf("page lacks %q:\n%s", want, w.b.String())
		}
	}
}

// An operator whose caches have not synced has no known objects: as
// gateway status prints "?" and opgate_objects leaves it out, the pages
// say unknown rather than count zero objects in every state.
func TestPagesSayTheObjectsAreUnknownWhileTheCachesHaveNotSynced(t *testing.T) {
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{
			Watch:     spec.WatchSpec{APIVersion: "cache.example.com/v1alpha1", Kind: "Memcached"},
			Callbacks: []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}},
		},
	}
	ui, err := New(Config{Clock: func() time.Time { return now }, View: func() []engine.OperatorView {
		return []engine.OperatorView{{Operator: op, Synced: false, Reason: spec.ReasonForbidden,
			Message: "cannot list and watch memcacheds.cache.example.com: forbidden"}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.NewRouter(server.Config{UI: ui}))
	t.Cleanup(srv.Close)
	tests := []struct {
		path string
		code int
		want []string
	}{
		{"/ui/", http.StatusOK, []string{`<td title="unknown: caches not synced">?</td>`, `<td class="state-settled" title="unknown: caches not synced">?</td>`}},
		{"/ui/operators/memcached", http.StatusOK, []string{`<p class="counts">Objects unknown: caches not synced.</p>`}},
		// 503, not 404: the object may well exist, and a 404 tells a monitor it is gone.
		{"/ui/operators/memcached/objects/shop/m", http.StatusServiceUnavailable, []string{"unknown: caches not synced", "operator &#34;memcached&#34; has not synced its caches"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, _, body := get(t, srv.URL+tt.path)
			if code != tt.code {
				t.Fatalf("GET %s: %d, want %d\n%s", tt.path, code, tt.code, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s lacks %q:\n%s", tt.path, w, body)
				}
			}
			for _, zero := range []string{"<td>0</td>", ">0</td>", "0 objects:", "No objects.", "watches no object"} {
				if strings.Contains(body, zero) {
					t.Errorf("GET %s counts zero objects (%q) for an operator whose objects are unknown:\n%s", tt.path, zero, body)
				}
			}
		})
	}
}
