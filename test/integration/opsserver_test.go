package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/metrics/metricstest"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/server"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/webui"
)

// startOpsServer runs a file-mode gateway and its ops server (/metrics,
// /readyz, /ui/) as `gateway run` does, until the test ends, and returns
// the server's URL.
func startOpsServer(t *testing.T, ops ...*spec.WebhookOperator) string {
	t.Helper()
	return startOpsServerLogging(t, os.Stderr, ops...)
}

// startOpsServerLogging is startOpsServer logging at Warn to logs.
func startOpsServerLogging(t *testing.T, logs io.Writer, ops ...*spec.WebhookOperator) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	gw, err := runner.New(cfg, runner.Options{Operators: ops, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("wire gateway: %v", err)
	}
	ui, err := webui.New(webui.Config{View: gw.View})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.NewRouter(server.Config{Gatherer: reg, Ready: gw.Ready, UI: ui}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway stopped with error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("gateway did not stop within 30s")
		}
	})
	return srv.URL
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// scrape reads /metrics as Prometheus would.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := fetch(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// One object whose handler fails, one that succeeds, behind an HMAC
// secret: /metrics counts them by state and carries client-go's work queue
// metrics; the web view shows the failure and never the secret. (client-go's
// REST client metrics are checked in the e2e suite, on the gateway binary:
// in this test binary envtest's controller-runtime claims client-go's
// process-wide REST metrics hook first.)
func TestOpsServerShowsObjectStatesMetricsAndNoSecret(t *testing.T) {
	ns := newNamespace(t)
	const secret = "s3cr3t-hmac-value-for-the-ops-test"
	writeSecret(t, ns, "hook-hmac", secret)
	const errMsg = "the backend of broken is down"
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Object.GetName() == "broken" {
			return 200, map[string]any{"error": map[string]any{"message": errMsg, "retryAfter": "10m"}}
		}
		return 200, map[string]any{}
	})
	base := startOpsServer(t, operatorFor(t, "opsview", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Handler.Auth = &spec.AuthSpec{HMACSecretRef: &spec.SecretKeyRef{Namespace: ns, Name: "hook-hmac", Key: "key"}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "fine", 1)
	createWidget(t, ns, "broken", 1)

	objects := func(state string) float64 {
		v, _ := metricstest.Value(scrape(t, base)["opgate_objects"], map[string]string{"operator": "opsview", "state": state})
		return v
	}
	eventually(t, 30*time.Second, func() error {
		if b, s := objects("backing_off"), objects("settled"); b != 1 || s != 1 {
			return fmt.Errorf("opgate_objects{operator=opsview}: backing_off %v, settled %v; want 1 and 1", b, s)
		}
		return nil
	})
	fams := scrape(t, base)
	if v, ok := metricstest.Value(fams["opgate_operator_ready"], map[string]string{"operator": "opsview", "reason": "Running"}); !ok || v != 1 {
		t.Errorf("opgate_operator_ready{operator=opsview,reason=Running} = %v (present %v), want 1", v, ok)
	}
	for _, state := range []string{"failing", "permanently_failed", "deleting", "pending"} {
		if v, ok := metricstest.Value(fams["opgate_objects"], map[string]string{"operator": "opsview", "state": state}); !ok || v != 0 {
			t.Errorf("opgate_objects{operator=opsview,state=%s} = %v (present %v), want 0", state, v, ok)
		}
	}
	queue := map[string]string{"name": "opsview"}
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
		{"workqueue_unfinished_work_seconds", queue, 0},
		{"workqueue_longest_running_processor_seconds", queue, 0},
	} {
		if v, ok := metricstest.Value(fams[tt.family], tt.labels); !ok || v < tt.atLeast {
			t.Errorf("%s%v = %v (present %v), want at least %v", tt.family, tt.labels, v, ok, tt.atLeast)
		}
	}

	pages := map[string]string{
		"/ui/":                  "opsview",
		"/ui/operators/opsview": errMsg,
		"/ui/operators/opsview/objects/" + ns + "/broken": errMsg,
		"/ui/operators/opsview/objects/" + ns + "/fine":   "settled",
		"/metrics": "opgate_objects",
	}
	forbidden := []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), base64.URLEncoding.EncodeToString([]byte(secret)),
		base64.RawStdEncoding.EncodeToString([]byte(secret))}
	for path, want := range pages {
		code, body := fetch(t, base+path)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want 200 showing %q:\n%s", path, code, want, body)
		}
		for _, f := range forbidden {
			if strings.Contains(body, f) {
				t.Errorf("GET %s shows the handler's HMAC secret (%q)", path, f)
			}
		}
	}
}
