package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
)

// The bench resource: a Memcached whose handler makes one Deployment and
// reports {observedSize, deploymentName}.
const (
	group    = "bench.opgate.dev"
	version  = "v1"
	kind     = "Memcached"
	resource = "memcacheds"
)

// handlerMain serves the bench handler in a process of its own, as a
// user's handler runs beside the gateway: its CPU is measured apart from
// the harness's (whose watches and workload serve both systems alike), and
// it runs with the systems' GOMAXPROCS.
func handlerMain(args []string) int {
	fs := flag.NewFlagSet("handler", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address of the callbacks, /stats and /healthz")
	sleep := fs.Duration("sleep", 0, "simulated work per call")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	h := &benchHandler{rec: newRecorder(), sleep: *sleep}
	srv, err := serveStats(*addr, h.rec, h.mux())
	if err != nil {
		fmt.Fprintln(os.Stderr, "handler:", err)
		return 1
	}
	<-ctx.Done()
	_ = srv.Close()
	return 0
}

// benchHandler is the minimal Go handler the gateway calls.
type benchHandler struct {
	rec   *recorder
	sleep time.Duration // simulated work per call
}

func (h *benchHandler) mux() *callbacks.Mux {
	mux := callbacks.NewMux()
	mux.Handle("/create", func(ctx context.Context, req *callbacks.Request) (*callbacks.Response, error) {
		return h.apply(ctx, evCreate, req)
	})
	mux.Handle("/update", func(ctx context.Context, req *callbacks.Request) (*callbacks.Response, error) {
		return h.apply(ctx, evUpdate, req)
	})
	mux.Handle("/delete", func(ctx context.Context, req *callbacks.Request) (*callbacks.Response, error) {
		h.rec.record(evDelete, req.Object.GetName())
		if err := pause(ctx, h.sleep); err != nil {
			return nil, err
		}
		return callbacks.Finalized(true), nil
	})
	return mux
}

func (h *benchHandler) apply(ctx context.Context, event string, req *callbacks.Request) (*callbacks.Response, error) {
	name := req.Object.GetName()
	h.rec.record(event, name)
	size, err := req.ObjectInt64("spec", "size")
	if err != nil {
		return nil, callbacks.Permanent(err.Error())
	}
	if err := pause(ctx, h.sleep); err != nil {
		return nil, err
	}
	return callbacks.Children(deployment(name, size)).WithStatus(statusOf(name, size)), nil
}

// pause stands for the handler's work.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func statusOf(name string, size int64) map[string]any {
	return map[string]any{"observedSize": size, "deploymentName": name}
}

// deployment is the child: inert on the bench cluster (no Deployment
// controller runs), collected by the garbage collector with its parent.
func deployment(name string, replicas int64) *unstructured.Unstructured {
	labels := map[string]any{"app": "memcached", "bench": name}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": name, "labels": labels},
		"spec": map[string]any{
			"replicas": replicas,
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name": "memcached", "image": "memcached:1.6",
					"ports": []any{map[string]any{"containerPort": int64(11211)}},
				}}},
			},
		},
	}}
}
