package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/metrics/metricstest"
	"github.com/opgate/opgate/gateway/spec"
)

// browserTimeout bounds what the browser waits for: seconds on an idle
// machine, given room for a loaded one.
const browserTimeout = 45 * time.Second

// TestWebViewShowsFailingObjectLive drives the gateway's web view in
// headless Chromium: with the operator page open, an object whose handler
// fails appears on it, failing, without a reload (the page's own polling),
// and its detail page shows the handler's error. Screenshots of both pages
// are written as test artifacts. The same gateway's /metrics counts the
// objects by state and carries client-go's queue and REST client metrics.
func TestWebViewShowsFailingObjectLive(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	bins := buildBinaries(t)
	installCRDs(t)
	w := newWalk(t, memcachedResource, "Memcached")

	const errMsg = "memcached backend for broken is unreachable"
	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var req callbacks.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		if req.Object != nil && req.Object.GetName() == "broken" && req.Callback == "create-deployment" {
			_, _ = fmt.Fprintf(rw, `{"error":{"message":%q}}`, errMsg)
			return
		}
		_, _ = rw.Write([]byte(`{}`))
	}))
	t.Cleanup(hook.Close)
	_, addr := startGatewayAt(t, bins, operatorFile(t, "memcached.yaml", func(op *spec.WebhookOperator) {
		op.Spec.Watch.Namespaces = []string{w.ns}
		op.Spec.Handler.URL = hook.URL
		op.Spec.Children = nil // the test handler makes none
		op.Spec.Related = nil
	}))

	w.create("healthy", map[string]any{"size": int64(1)})
	browser := newBrowser(t, chrome)
	operatorPage := "http://" + addr + "/ui/operators/memcached"
	if err := chromedp.Do(browser, chromedp.Navigate(operatorPage)); err != nil {
		t.Fatalf("open %s: %v", operatorPage, err)
	}
	waitRowState(t, browser, w.ns+"/healthy", "settled")

	w.step("create broken, whose create callback fails, with the operator page open")
	created := time.Now()
	w.create("broken", map[string]any{"size": int64(1)})
	state := waitRowState(t, browser, w.ns+"/broken", "failing", "backing_off")
	w.step("the page shows broken %s after %s, without a reload", state, time.Since(created).Round(100*time.Millisecond))
	if first := evalString(t, browser, `document.querySelector("#objects tbody tr").dataset.object`); first != w.ns+"/broken" {
		t.Errorf("first row of the operator page is %q, want the failing object %s/broken first", first, w.ns)
	}
	if row := evalString(t, browser, fmt.Sprintf(`document.querySelector('tr[data-object=%q]').textContent`, w.ns+"/broken")); !strings.Contains(row, errMsg) {
		t.Errorf("the failing row does not show the handler's error %q: %q", errMsg, row)
	}
	screenshot(t, browser, "operator-page.png")

	// A click in script: the polling swaps the table under a mouse click's
	// node lookup.
	if got := evalString(t, browser, fmt.Sprintf(`document.querySelector('tr[data-object=%q] a').click(), "clicked"`, w.ns+"/broken")); got != "clicked" {
		t.Fatalf("open the detail page: %q", got)
	}
	Eventually(t, browserTimeout, "the detail page to show the handler's error", func(ctx context.Context) (bool, string, error) {
		got, err := chromedp.Run(browser, chromedp.Evaluate[string](`(document.getElementById("last-error") || {}).textContent || location.href`))
		return strings.Contains(got, errMsg) && strings.Contains(got, "temporary"), got, err
	})
	if page := evalString(t, browser, `document.body.textContent`); !strings.Contains(page, "create-deployment") {
		t.Errorf("the detail page does not name the failing callback create-deployment:\n%s", page)
	}
	screenshot(t, browser, "object-page.png")

	t.Run("metrics", func(t *testing.T) { assertGatewayMetrics(t, addr, "memcached") })
}

// assertGatewayMetrics scrapes the gateway's /metrics: operator's objects
// by state (one failing, one settled), client-go's work queue metrics of
// its queue and its REST client metrics.
func assertGatewayMetrics(t *testing.T, addr, operator string) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	objects := func(state string) float64 {
		return sampleOf(fams, "opgate_objects", map[string]string{"operator": operator, "state": state})
	}
	if failing, settled := objects("failing")+objects("backing_off"), objects("settled"); failing != 1 || settled != 1 {
		t.Errorf("opgate_objects{operator=%s}: failing+backing_off = %v, settled = %v; want 1 and 1", operator, failing, settled)
	}
	queue := map[string]string{"name": operator}
	for _, tt := range []struct {
		family  string
		labels  map[string]string
		atLeast float64
	}{
		{"workqueue_adds_total", queue, 2},
		{"workqueue_depth", queue, 0},
		{"workqueue_queue_duration_seconds", queue, 2},
		{"workqueue_work_duration_seconds", queue, 2},
		{"workqueue_retries_total", queue, 0},
		{"rest_client_requests_total", map[string]string{"method": "GET", "code": "200"}, 1},
		{"rest_client_request_duration_seconds", map[string]string{"verb": "GET"}, 1},
	} {
		if v := sampleOf(fams, tt.family, tt.labels); v < tt.atLeast {
			t.Errorf("%s%v = %v, want at least %v", tt.family, tt.labels, v, tt.atLeast)
		}
	}
}

// sampleOf is the value of the series of family f with labels (a
// histogram's sample count); -1 when there is none.
func sampleOf(fams map[string]*dto.MetricFamily, f string, labels map[string]string) float64 {
	if v, ok := metricstest.Value(fams[f], labels); ok {
		return v
	}
	return -1
}

// chromiumPath finds Debian's chromium, which `make tools` installs.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not on the PATH: the web view's browser test drives it headless; run `make tools` (installs Debian's chromium package with apt-get)")
	return ""
}

// newBrowser starts headless Chromium for the test and returns its tab's
// context, cancelled (the browser stopped) when the test ends.
func newBrowser(t *testing.T, chrome string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // the tests may run as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// No deadline here: the first action's context is the browser's life.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start headless chromium (%s): %v", chrome, err)
	}
	return ctx
}

// waitRowState waits until the open operator page shows the object's row
// in one of the states, and returns it.
func waitRowState(t *testing.T, browser context.Context, object string, states ...string) string {
	t.Helper()
	var got string
	Eventually(t, browserTimeout, fmt.Sprintf("the page to show %s %s", object, strings.Join(states, " or ")), func(context.Context) (bool, string, error) {
		script := fmt.Sprintf(`(document.querySelector('tr[data-object=%q]') || {dataset: {state: "absent"}}).dataset.state`, object)
		var err error
		got, err = chromedp.Run(browser, chromedp.Evaluate[string](script))
		for _, s := range states {
			if got == s {
				return true, got, err
			}
		}
		return false, object + " " + got, err
	})
	return got
}

func evalString(t *testing.T, browser context.Context, script string) string {
	t.Helper()
	out, err := chromedp.Run(browser, chromedp.Evaluate[string](script))
	if err != nil {
		t.Fatalf("evaluate %s: %v", script, err)
	}
	return out
}

// screenshot writes the page as a PNG under artifactDir and logs its path.
func screenshot(t *testing.T, browser context.Context, name string) {
	t.Helper()
	// Chromium refuses a capture ("Cannot take screenshot with 0 width")
	// while the page's live refresh swaps its content; a later one works.
	var png []byte
	Eventually(t, browserTimeout, "a screenshot "+name, func(context.Context) (bool, string, error) {
		var err error
		png, err = chromedp.Run(browser, chromedp.FullScreenshot(100))
		return err == nil && len(png) > 0, fmt.Sprintf("%d bytes", len(png)), err
	})
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// artifactDir is where a test leaves files for people to look at:
// $OPGATE_ARTIFACTS/<test>, else test/e2e/artifacts/<test> (gitignored).
func artifactDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("OPGATE_ARTIFACTS")
	if root == "" {
		root = filepath.Join(repoRoot(t), "test", "e2e", "artifacts")
	}
	dir := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact directory: %v", err)
	}
	return dir
}
