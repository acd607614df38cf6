package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
)

// singleResult is the latency of single objects on an idle, converged
// system: each created alone, measured from the create request's return
// to the status showing in a watch, then deleted before the next.
type singleResult struct {
	System   string `json:"system"`
	Workload string `json:"workload"`
	Mode     string `json:"mode"`
	// Backlog is how many converged objects the namespace held meanwhile.
	Backlog int `json:"backlog"`
	Count   int `json:"count"`
	// Create → status seen in the watch.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
	// Create → the first call for the object (gateway: the handler
	// receives the create callback; raw: its pass begins): the share of
	// the latency spent before the handler is reached. It can be
	// negative: a watch may deliver the object before the create's
	// answer reaches the harness. Calls is how many objects were called.
	Calls     int     `json:"calls"`
	CallP50Ms float64 `json:"callP50Ms"`
	CallP99Ms float64 `json:"callP99Ms"`
}

// singleTimeout bounds one object's create, status and deletion.
const singleTimeout = 60 * time.Second

// single creates opts.Single objects one at a time next to the converged
// backlog and measures create → status for each.
func (h *harness) single(ctx context.Context, sys system, r *run, rep *report) error {
	h.log.Info("single objects", "system", r.System, "count", h.opts.Single)
	w := &workload{dyn: h.dyn, typed: h.typed, ns: r.namespace()}
	returned := map[string]time.Time{}
	var lat []float64
	for i := range h.opts.Single {
		name := fmt.Sprintf("single-%04d", i)
		created, seen, err := w.createAndWatch(ctx, name)
		if err != nil {
			return err
		}
		returned[name] = created
		lat = append(lat, ms(seen.Sub(created)))
		if err := w.deleteAndWait(ctx, name); err != nil {
			return err
		}
	}
	st, err := sys.stats(ctx)
	if err != nil {
		return err
	}
	var call []float64
	for name, created := range returned {
		if got, ok := st.First[evCreate][name]; ok {
			call = append(call, ms(got.Sub(created)))
		}
	}
	slices.Sort(lat)
	slices.Sort(call)
	rep.Single = append(rep.Single, singleResult{
		System: r.System, Workload: r.Workload, Mode: r.Mode, Backlog: h.opts.N, Count: len(lat),
		P50Ms: percentile(lat, 0.50), P99Ms: percentile(lat, 0.99), MaxMs: percentile(lat, 1),
		Calls: len(call), CallP50Ms: percentile(call, 0.50), CallP99Ms: percentile(call, 0.99),
	})
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// createAndWatch creates the object and returns when the create request
// returned and when a watch, opened before the create, showed its status.
func (w *workload) createAndWatch(ctx context.Context, name string) (created, seen time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, singleTimeout)
	defer cancel()
	wi, err := w.parents().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return created, seen, fmt.Errorf("watch %s: %w", name, err)
	}
	defer wi.Stop()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/" + version, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": w.ns},
		"spec":     map[string]any{"size": int64(1)},
	}}
	if _, err := w.parents().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return created, seen, fmt.Errorf("create %s: %w", name, err)
	}
	created = time.Now()
	for {
		ev, err := nextEvent(ctx, wi, name)
		if err != nil {
			return created, seen, err
		}
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok || ev.Type == watch.Deleted {
			continue
		}
		observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedSize")
		dep, _, _ := unstructured.NestedString(u.Object, "status", "deploymentName")
		if observed == 1 && dep == name {
			return created, time.Now(), nil
		}
	}
}

// deleteAndWait deletes the object and returns once a watch shows it gone
// (the system's delete work done, its finalizer released).
func (w *workload) deleteAndWait(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, singleTimeout)
	defer cancel()
	wi, err := w.parents().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return fmt.Errorf("watch %s: %w", name, err)
	}
	defer wi.Stop()
	if err := w.parents().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	for {
		ev, err := nextEvent(ctx, wi, name)
		if err != nil {
			return err
		}
		if ev.Type == watch.Deleted {
			return nil
		}
	}
}

// nextEvent is the watch's next event; an error event, a closed watch or
// the deadline fail the measurement.
func nextEvent(ctx context.Context, wi watch.Interface, name string) (watch.Event, error) {
	select {
	case <-ctx.Done():
		return watch.Event{}, fmt.Errorf("%s: %w", name, ctx.Err())
	case ev, ok := <-wi.ResultChan():
		if !ok {
			return ev, fmt.Errorf("%s: the watch closed", name)
		}
		if ev.Type == watch.Error {
			return ev, fmt.Errorf("%s: watch: %v", name, apierrors.FromObject(ev.Object))
		}
		return ev, nil
	}
}
