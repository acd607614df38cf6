package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// BenchmarkCreateToStatus measures the gateway end to end against a real
// apiserver: b.N objects created, each through create callback, child
// Deployment apply, status patch and state annotation, until every status
// is visible. ns/op is the wall time per object with objects in parallel.
func BenchmarkCreateToStatus(b *testing.B) {
	ns := newNamespace(b)
	h := newHandler(b, func(req callbacks.Request) (int, any) {
		return 200, map[string]any{
			"status":   map[string]any{"message": "done"},
			"children": []any{deployment(req.Object.GetName(), 1)},
		}
	})
	op := operatorFor(b, "bench", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gw, err := runner.New(cfg, runner.Options{Operators: []*spec.WebhookOperator{op}, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = gw.Run(ctx) }()

	b.ResetTimer()
	for i := range b.N {
		if _, err := dyn(b).Resource(widgets).Namespace(ns).Create(ctx, widget(ns, fmt.Sprintf("b%06d", i), 1), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := dyn(b).Resource(widgets).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		done := 0
		for _, w := range list.Items {
			if m, _, _ := unstructured.NestedString(w.Object, "status", "message"); m == "done" {
				done++
			}
		}
		if done == b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d objects reached status", done, b.N)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
