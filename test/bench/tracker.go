package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// tracker follows a run's namespace through watches: what each parent's
// status reports and how many replicas each child Deployment has. Phases
// converge on what it has seen, so that waiting costs the API server no
// lists: polled lists of N objects took a share of its CPU that grew with
// a phase's length, and so with the slower system.
type tracker struct {
	mu       sync.Mutex
	parents  map[string]int64 // name → status.observedSize when status.deploymentName names it, else -1
	children map[string]int64 // name → spec.replicas
	cancel   context.CancelFunc
}

// startTracker watches the workload's namespace until stop.
func startTracker(ctx context.Context, w *workload) (*tracker, error) {
	t := &tracker{parents: map[string]int64{}, children: map[string]int64{}}
	ctx, t.cancel = context.WithCancel(ctx)
	dyn := dynamicinformer.NewFilteredDynamicSharedInformerFactory(w.dyn, 0, w.ns, nil)
	typed := informers.NewSharedInformerFactoryWithOptions(w.typed, 0, informers.WithNamespace(w.ns))
	parents := dyn.ForResource(parentGVR).Informer()
	children := typed.Apps().V1().Deployments().Informer()
	if _, err := parents.AddEventHandler(t.handler(t.parents, parentObserved)); err != nil {
		t.cancel()
		return nil, err
	}
	if _, err := children.AddEventHandler(t.handler(t.children, childReplicas)); err != nil {
		t.cancel()
		return nil, err
	}
	dyn.Start(ctx.Done())
	typed.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), parents.HasSynced, children.HasSynced) {
		t.cancel()
		return nil, fmt.Errorf("watch %s: caches not synced", w.ns)
	}
	return t, nil
}

func (t *tracker) stop() { t.cancel() }

// handler keeps into[name] = value(obj) for every object of an informer
// but the single objects (and their children), which stay converged
// beside the workload once measured.
func (t *tracker) handler(into map[string]int64, value func(any) (string, int64, bool)) cache.ResourceEventHandler {
	set := func(obj any) {
		if name, v, ok := value(obj); ok && !strings.HasPrefix(name, singlePrefix) {
			t.mu.Lock()
			into[name] = v
			t.mu.Unlock()
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if o, err := meta.Accessor(obj); err == nil {
				t.mu.Lock()
				delete(into, o.GetName())
				t.mu.Unlock()
			}
		},
	}
}

func parentObserved(obj any) (string, int64, bool) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return "", 0, false
	}
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedSize")
	if dep, _, _ := unstructured.NestedString(u.Object, "status", "deploymentName"); dep != u.GetName() {
		observed = -1
	}
	return u.GetName(), observed, true
}

func childReplicas(obj any) (string, int64, bool) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return "", 0, false
	}
	var replicas int64 = -1
	if d.Spec.Replicas != nil {
		replicas = int64(*d.Spec.Replicas)
	}
	return d.Name, replicas, true
}

// converged reports whether n parents (those named by the workload) report
// size in their status and their children have that many replicas; size
// 0: every parent gone.
func (t *tracker) converged(n int, size int64) (bool, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if size == 0 {
		return len(t.parents) == 0, fmt.Sprintf("%d parents left", len(t.parents))
	}
	ready, children := count(t.parents, size), count(t.children, size)
	return ready >= n && children >= n, fmt.Sprintf("%d/%d statuses, %d/%d children", ready, n, children, n)
}

// childrenLeft counts the workload's children.
func (t *tracker) childrenLeft() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.children)
}

func count(m map[string]int64, want int64) int {
	n := 0
	for _, v := range m {
		if v == want {
			n++
		}
	}
	return n
}

// await polls the tracker's memory (no API requests) until cond holds, and
// returns when it first did, to within trackerPoll.
func await(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) (time.Time, error) {
	return waitEvery(ctx, timeout, what, trackerPoll, func(context.Context) (bool, string, error) {
		ok, seen := cond()
		return ok, seen, nil
	})
}

// trackerPoll is how often await looks: the precision of a phase's time.
const trackerPoll = 20 * time.Millisecond
