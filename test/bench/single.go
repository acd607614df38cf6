package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// singleResult is the latency of single objects on an idle, converged
// system: each created alone, measured from the create request's return
// to the status showing in a watch, the next created once the system's
// writes for it are in. They stay, converged and idle, until
// the run's control plane goes: deleting them would leave the garbage
// collector's work on their children in the next phase, or a wait of
// seconds for it.
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
	// Create → the watch showing the system's finalizer on the object.
	FinalizerP50Ms float64 `json:"finalizerP50Ms"`
	FinalizerP99Ms float64 `json:"finalizerP99Ms"`
}

// singlePrefix names the single objects, apart from the workload's.
const singlePrefix = "single-"

// singleTimeout bounds one object's create and status.
const singleTimeout = 60 * time.Second

// single creates opts.Single objects one at a time next to the converged
// backlog and measures create → status for each.
func (h *harness) single(ctx context.Context, sys system, r *run, w *workload, rep *report) error {
	h.log.Info("single objects", "system", r.System, "count", h.opts.Single)
	returned := map[string]time.Time{}
	var lat, fin []float64
	for i := range h.opts.Single {
		name := fmt.Sprintf("%s%04d", singlePrefix, i)
		t, err := w.createAndWatch(ctx, name)
		if err != nil {
			return err
		}
		returned[name] = t.created
		lat = append(lat, ms(t.status.Sub(t.created)))
		fin = append(fin, ms(t.finalizer.Sub(t.created)))
		// Each system writes its state after the status: the next object,
		// and after the last the next phase, start once that is in.
		if _, err := h.settled(ctx, sys); err != nil {
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
	slices.Sort(fin)
	rep.Single = append(rep.Single, singleResult{
		System: r.System, Workload: r.Workload, Mode: r.Mode, Backlog: h.opts.N, Count: len(lat),
		P50Ms: percentile(lat, 0.50), P99Ms: percentile(lat, 0.99), MaxMs: percentile(lat, 1),
		Calls: len(call), CallP50Ms: percentile(call, 0.50),
		CallP99Ms: percentile(call, 0.99), FinalizerP50Ms: percentile(fin, 0.50),
		FinalizerP99Ms: percentile(fin, 0.99),
	})
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// singleTimes are when the create request returned and when a watch,
// opened before the create, first showed a finalizer and the status.
type singleTimes struct{ created, finalizer, status time.Time }

// createAndWatch creates the object and watches it until its status shows.
func (w *workload) createAndWatch(ctx context.Context, name string) (t singleTimes, err error) {
	ctx, cancel := context.WithTimeout(ctx, singleTimeout)
	defer cancel()
	nw := &nameWatch{r: w.parents(), name: name}
	defer nw.stop()
	if _, err := nw.open(ctx); err != nil {
		return t, err
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/" + version, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": w.ns},
		"spec":     map[string]any{"size": int64(1)},
	}}
	if _, err := w.parents().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return t, fmt.Errorf("create %s: %w", name, err)
	}
	t.created = time.Now()
	for {
		ev, err := nw.next(ctx)
		if err != nil {
			return t, err
		}
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok || ev.Type == watch.Deleted {
			continue
		}
		if t.finalizer.IsZero() && len(u.GetFinalizers()) > 0 {
			t.finalizer = time.Now()
		}
		observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedSize")
		dep, _, _ := unstructured.NestedString(u.Object, "status", "deploymentName")
		if observed == 1 && dep == name {
			t.status = time.Now()
			if t.finalizer.IsZero() {
				t.finalizer = t.status
			}
			return t, nil
		}
	}
}

// nameWatch watches one object by name. When the API server ends the
// watch, a list stands in for the events missed (the object as it is now,
// or its deletion) and the watch resumes from the list's resourceVersion.
type nameWatch struct {
	r    dynamic.ResourceInterface
	name string
	wi   watch.Interface
}

// open lists the object and watches it from there; it returns what the
// list showed as an event (nil: nothing to report).
func (nw *nameWatch) open(ctx context.Context) (*watch.Event, error) {
	nw.stop()
	sel := metav1.ListOptions{FieldSelector: "metadata.name=" + nw.name}
	list, err := nw.r.List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", nw.name, err)
	}
	sel.ResourceVersion = list.GetResourceVersion()
	if nw.wi, err = nw.r.Watch(ctx, sel); err != nil {
		return nil, fmt.Errorf("watch %s: %w", nw.name, err)
	}
	if len(list.Items) == 0 {
		return &watch.Event{Type: watch.Deleted}, nil
	}
	return &watch.Event{Type: watch.Modified, Object: &list.Items[0]}, nil
}

// next is the object's next event; the deadline fails the measurement.
func (nw *nameWatch) next(ctx context.Context) (watch.Event, error) {
	select {
	case <-ctx.Done():
		return watch.Event{}, fmt.Errorf("%s: %w", nw.name, ctx.Err())
	case ev, ok := <-nw.wi.ResultChan():
		if ok && ev.Type != watch.Error {
			return ev, nil
		}
		// Closed, or an error such as an expired resourceVersion.
		listed, err := nw.open(ctx)
		if err != nil {
			return watch.Event{}, err
		}
		return *listed, nil
	}
}

func (nw *nameWatch) stop() {
	if nw.wi != nil {
		nw.wi.Stop()
	}
}
