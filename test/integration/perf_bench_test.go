package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// BenchmarkBacklogMemcached measures a backlog of b.N memcached-like
// objects (one Deployment child, a status, a delete callback so the
// finalizer is held) that exist before the gateway starts, until every
// status is visible. It reports the gateway's API writes per object by
// action and the test process's CPU per object (gateway and handler).
// Profile it with -cpuprofile/-memprofile and -benchtime 1000x.
func BenchmarkBacklogMemcached(b *testing.B) {
	ns := newNamespace(b)
	h := newHandler(b, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.Event(spec.EventDelete) {
			return 200, map[string]any{}
		}
		size, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size")
		return 200, map[string]any{
			"status":   map[string]any{"message": fmt.Sprintf("size %d", size)},
			"children": []any{deployment(req.Object.GetName(), size)},
		}
	})
	op := operatorFor(b, "perf", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "update", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
			{ID: "delete", Events: []spec.Event{spec.EventDelete}},
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range b.N {
		if _, err := dyn(b).Resource(widgets).Namespace(ns).Create(ctx, widget(ns, fmt.Sprintf("m%06d", i), 1), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	gw, err := runner.New(cfg, runner.Options{Operators: []*spec.WebhookOperator{op}, Registerer: reg, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := processCPU()
	b.ResetTimer()
	go func() { _ = gw.Run(ctx) }()
	waitStatus(ctx, b, ns, b.N, "size 1")
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/object")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	for action, n := range applyCounts(b, reg) {
		b.ReportMetric(n/float64(b.N), action+"-writes/object")
	}
}

// waitStatus polls until n widgets in ns have status.message want.
func waitStatus(ctx context.Context, b *testing.B, ns string, n int, want string) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		list, err := dyn(b).Resource(widgets).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		done := 0
		for _, w := range list.Items {
			if m, _, _ := unstructured.NestedString(w.Object, "status", "message"); m == want {
				done++
			}
		}
		if done == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d objects reached status %q", done, n, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// applyCounts sums opgate_apply_results by action.
func applyCounts(b *testing.B, reg *prometheus.Registry) map[string]float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "opgate_apply_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelOf(m, "action")] += m.GetCounter().GetValue()
		}
	}
	return out
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}
