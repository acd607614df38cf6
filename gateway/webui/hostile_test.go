package webui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/inspect"
	"github.com/opgate/opgate/gateway/server"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// Hostile values, each shown somewhere on the pages: free text a handler,
// a user or the API server controls.
const (
	hostileScript  = `<script>alert(1)</script>`
	hostileAttr    = `"><img src=x onerror=alert(2)>`
	hostileQuote   = `' onmouseover='alert(3)`
	hostileURL     = `javascript:alert(4)`
	hostileEntity  = `&lt;b&gt; & +`
	hostileNewline = "line\n<i>two</i>"
)

var hostileValues = []string{hostileScript, hostileAttr, hostileQuote, hostileURL, hostileEntity, hostileNewline}

// hostileServer serves pages that show every hostile value: an operator's
// kind and readiness, object names and namespaces, a handler's error
// reason and message, a reconcile request, a timer interval.
func hostileServer(t *testing.T) *httptest.Server {
	t.Helper()
	op := &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{
			Watch: spec.WatchSpec{APIVersion: "cache.example.com/v1alpha1", Kind: hostileAttr},
			Callbacks: []spec.Callback{
				{ID: "create", Events: []spec.Event{spec.EventCreate}},
				{ID: "backup", Events: []spec.Event{spec.EventTimer}, Interval: &spec.Duration{Duration: time.Hour}},
				{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
			},
		},
	}
	failing := memcached(t, op, "shop", "zeta", &state.Progress{Attempts: 2, First: now.Add(-time.Minute), Next: now.Add(time.Minute),
		Message: hostileScript + hostileNewline, Reason: hostileQuote})
	ann := failing.GetAnnotations()
	ann[inspect.ReconcileRequestAnnotation] = hostileURL + hostileEntity
	failing.SetAnnotations(ann)
	named := memcached(t, op, hostileURL, hostileScript, &state.Progress{Attempts: 1, First: now, Next: now.Add(time.Second),
		Message: hostileAttr, Reason: hostileEntity})
	deleting := memcached(t, op, "shop", "gone", nil)
	deleting.SetDeletionTimestamp(&metav1.Time{Time: now.Add(-time.Hour)})
	deleting.SetFinalizers([]string{op.Finalizer()})
	broken := memcached(t, op, "", "cluster-wide", nil)
	broken.SetAnnotations(map[string]string{op.StateAnnotation(): hostileAttr})
	objects := []*unstructured.Unstructured{failing, named, deleting, broken}
	ui, err := New(Config{Clock: func() time.Time { return now }, View: func() []engine.OperatorView {
		return []engine.OperatorView{{Operator: op, Ready: false, Reason: hostileScript, Message: hostileAttr + hostileQuote, Synced: true, Objects: objects}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.NewRouter(server.Config{UI: ui}))
	t.Cleanup(srv.Close)
	return srv
}

// hostilePages are the pages of hostileServer, and the error page (which
// shows the requested name).
var hostilePages = []struct {
	path string
	code int
}{
	{"/ui/", http.StatusOK},
	{"/ui/operators/memcached", http.StatusOK},
	{"/ui/operators/memcached/objects/shop/zeta", http.StatusOK},
	{"/ui/operators/memcached/objects/shop/gone", http.StatusOK},
	{"/ui/operators/memcached/objects/-/cluster-wide", http.StatusOK},
	{"/ui/operators/memcached/objects/shop/" + `%3Cscript%3Ealert(1)%3C%2Fscript%3E`, http.StatusBadRequest},
	{"/ui/operators/" + `javascript:alert(4)`, http.StatusBadRequest},
}

// elements the pages are made of: any other element in a page is markup
// that came from a value.
var pageElements = map[string]bool{
	"html": true, "head": true, "body": true, "meta": true, "title": true, "link": true, "script": true,
	"header": true, "main": true, "a": true, "span": true, "time": true, "h1": true, "h2": true, "p": true,
	"table": true, "thead": true, "tbody": true, "tr": true, "th": true, "td": true, "dl": true, "dt": true,
	"dd": true, "code": true,
}

func TestHostileValuesAreTextEverywhere(t *testing.T) {
	srv := hostileServer(t)
	shown := map[string]bool{}
	for _, p := range hostilePages {
		t.Run(p.path, func(t *testing.T) {
			code, _, body := get(t, srv.URL+p.path)
			if code != p.code {
				t.Fatalf("GET %s: %d, want %d\n%s", p.path, code, p.code, body)
			}
			doc, err := html.Parse(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			checkNode(t, doc, &text)
			for _, v := range hostileValues {
				if strings.Contains(text.String(), v) {
					shown[v] = true
				}
			}
		})
	}
	for _, v := range hostileValues {
		if !shown[v] {
			t.Errorf("%q is shown on no page: the test does not test it", v)
		}
	}
}

// checkNode fails on markup a value could have made: an unknown element,
// an event handler attribute, a script other than the page's own, a link
// out of /ui/. It collects text and attribute values into text.
func checkNode(t *testing.T, n *html.Node, text *strings.Builder) {
	t.Helper()
	switch n.Type {
	case html.TextNode:
		text.WriteString(n.Data)
	case html.ElementNode:
		if !pageElements[n.Data] {
			t.Errorf("element <%s> in the page: a value became markup", n.Data)
		}
		for _, a := range n.Attr {
			text.WriteString(a.Val)
			switch {
			case strings.HasPrefix(strings.ToLower(a.Key), "on"):
				t.Errorf("<%s %s=%q>: a value became an event handler", n.Data, a.Key, a.Val)
			case a.Key == "href" && !strings.HasPrefix(a.Val, "/ui/"):
				t.Errorf("<%s href=%q>: a link out of the web view", n.Data, a.Val)
			case n.Data == "script" && (a.Key != "src" || a.Val != "/ui/static/live.js") && a.Key != "defer":
				t.Errorf("<script %s=%q>: not the page's own script", a.Key, a.Val)
			}
		}
		if n.Data == "script" && n.FirstChild != nil {
			t.Errorf("inline script %q", n.FirstChild.Data)
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		checkNode(t, c, text)
	}
}
