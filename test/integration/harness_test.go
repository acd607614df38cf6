package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// handler is a test callback endpoint that records every request and
// answers with what the test's function returns.
type handler struct {
	*httptest.Server
	mu       sync.Mutex
	requests []callbacks.Request
	arrived  []time.Time
	answer   func(req callbacks.Request) (code int, body any)
}

func newHandler(t testing.TB, answer func(req callbacks.Request) (int, any)) *handler {
	t.Helper()
	h := &handler{answer: answer}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var req callbacks.Request
		if err := json.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.requests = append(h.requests, req)
		h.arrived = append(h.arrived, time.Now())
		h.mu.Unlock()
		code, body := h.answer(req)
		switch b := body.(type) {
		case nil:
			w.WriteHeader(code)
		case []byte:
			w.WriteHeader(code)
			_, _ = w.Write(b)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(b)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

// arrivals returns when each request of one callback id arrived.
func (h *handler) arrivals(callback string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []time.Time
	for i, r := range h.requests {
		if r.Callback == callback {
			out = append(out, h.arrived[i])
		}
	}
	return out
}

// calls returns the recorded requests of one callback id.
func (h *handler) calls(callback string) []callbacks.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []callbacks.Request
	for _, r := range h.requests {
		if r.Callback == callback {
			out = append(out, r)
		}
	}
	return out
}

func ok(body any) func(callbacks.Request) (int, any) {
	return func(callbacks.Request) (int, any) { return 200, body }
}

// operatorFor builds a valid, defaulted file-mode operator watching Widgets
// in one namespace.
func operatorFor(t testing.TB, name, namespace, url string, mutate func(*spec.OperatorSpec)) *spec.WebhookOperator {
	t.Helper()
	op := &spec.WebhookOperator{
		TypeMeta:   metav1.TypeMeta{APIVersion: spec.APIVersion, Kind: spec.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: spec.OperatorSpec{
			Watch:    spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Widget", Namespaces: []string{namespace}},
			Children: []spec.ChildSpec{{APIVersion: "apps/v1", Kind: "Deployment"}},
			Handler:  spec.HandlerSpec{URL: url},
		},
	}
	mutate(&op.Spec)
	spec.Default(op)
	if err := spec.Validate(op); err != nil {
		t.Fatalf("test operator invalid: %v", err)
	}
	return op
}

// startGateway runs a file-mode gateway until the test ends or the
// returned stop is called.
func startGateway(t *testing.T, ops ...*spec.WebhookOperator) (stop func()) {
	t.Helper()
	stop, _ = startGatewayWithMetrics(t, ops...)
	return stop
}

// startGatewayWithMetrics is startGateway that also returns the gateway's
// metrics registry.
func startGatewayWithMetrics(t *testing.T, ops ...*spec.WebhookOperator) (stop func(), reg *prometheus.Registry) {
	t.Helper()
	return startGatewayWithOptions(t, runner.Options{}, ops...)
}

// startGatewayWithOptions is startGatewayWithMetrics with the gateway's
// options; their Operators and Registerer are set here, and their Logger
// when nil.
func startGatewayWithOptions(t *testing.T, opts runner.Options, ops ...*spec.WebhookOperator) (stop func(), reg *prometheus.Registry) {
	t.Helper()
	return startGatewayWithConfig(t, cfg, opts, ops...)
}

// startGatewayWithConfig is startGatewayWithOptions talking to the API
// server through config (e.g. one whose transport counts requests).
func startGatewayWithConfig(t *testing.T, config *rest.Config, opts runner.Options, ops ...*spec.WebhookOperator) (stop func(), reg *prometheus.Registry) {
	t.Helper()
	reg = prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	level := slog.LevelWarn
	if os.Getenv("OPGATE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	opts.Operators, opts.Registerer = ops, reg
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	gw, err := runner.New(config, opts)
	if err != nil {
		t.Fatalf("wire gateway: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
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
	}
	t.Cleanup(stop)
	return stop, reg
}

// newNamespace creates a namespace unique to the test.
func newNamespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + fmt.Sprintf("-%d", time.Now().UnixNano()%100000)
	_, err := kube(t).CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return name
}

func kube(t testing.TB) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(cfg)
}

func dyn(t testing.TB) dynamic.Interface {
	t.Helper()
	return dynamic.NewForConfigOrDie(cfg)
}

func widget(namespace, name string, size int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.opgate.dev/v1",
		"kind":       "Widget",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec":       map[string]any{"size": size},
	}}
}

func createWidget(t *testing.T, namespace, name string, size int64) *unstructured.Unstructured {
	t.Helper()
	out, err := dyn(t).Resource(widgets).Namespace(namespace).Create(context.Background(), widget(namespace, name, size), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create widget: %v", err)
	}
	return out
}

func getWidget(t *testing.T, namespace, name string) (*unstructured.Unstructured, error) {
	t.Helper()
	return dyn(t).Resource(widgets).Namespace(namespace).Get(context.Background(), name, metav1.GetOptions{})
}

// updateWidget applies fn to the current widget and writes it, retrying on
// conflicts with the gateway's own writes.
func updateWidget(t *testing.T, namespace, name string, fn func(*unstructured.Unstructured)) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		w, err := getWidget(t, namespace, name)
		if err != nil {
			return err
		}
		fn(w)
		_, err = dyn(t).Resource(widgets).Namespace(namespace).Update(context.Background(), w, metav1.UpdateOptions{})
		return err
	})
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events lists the Events recorded on an object.
func events(t *testing.T, namespace, name string) []corev1.Event {
	t.Helper()
	list, err := kube(t).CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + name,
	})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return list.Items
}

func hasEvent(t *testing.T, namespace, name, typ, reason string) error {
	for _, e := range events(t, namespace, name) {
		if e.Type == typ && e.Reason == reason {
			return nil
		}
	}
	return fmt.Errorf("no %s event %s on %s/%s", typ, reason, namespace, name)
}

func deployment(name string, replicas int64) map[string]any {
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"replicas": replicas,
			"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": name}},
				"spec":     map[string]any{"containers": []any{map[string]any{"name": "main", "image": "memcached:1.4.36"}}},
			},
		},
	}
}

// retryAfterOnce adds a Retry-After header to the next answer.
func retryAfterOnce(next http.Handler, value string) http.Handler {
	var done sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done.Do(func() { w.Header().Set("Retry-After", value) })
		next.ServeHTTP(w, r)
	})
}

// waitWidgetGone waits until a widget no longer exists.
func waitWidgetGone(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if _, err := getWidget(t, ns, name); !apierrors.IsNotFound(err) {
			return fmt.Errorf("widget %s/%s still there (err %v)", ns, name, err)
		}
		return nil
	})
}
