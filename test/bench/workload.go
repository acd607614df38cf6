package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// workload writes the parents of one run, as fast as its client allows,
// and watches them converge (tracker).
type workload struct {
	dyn   dynamic.Interface
	typed kubernetes.Interface // protobuf: the Deployment lists stay cheap
	ns    string
	n     int
	track *tracker
	// sent is when each object's latest change was sent, per event.
	mu   sync.Mutex
	sent map[string]map[string]time.Time
}

// writers is how many requests the workload has in flight.
const writers = 16

func (w *workload) name(i int) string { return fmt.Sprintf("mc-%05d", i) }

func (w *workload) markSent(event, name string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent == nil {
		w.sent = map[string]map[string]time.Time{}
	}
	if w.sent[event] == nil {
		w.sent[event] = map[string]time.Time{}
	}
	w.sent[event][name] = at
}

// each runs fn for every object index, writers at a time.
func (w *workload) each(ctx context.Context, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idx := make(chan int)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := range idx {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := 0; i < w.n && ctx.Err() == nil; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return context.Cause(ctx)
}

func (w *workload) parents() dynamic.ResourceInterface {
	return w.dyn.Resource(parentGVR).Namespace(w.ns)
}

func (w *workload) createAll(ctx context.Context) error {
	return w.each(ctx, func(ctx context.Context, i int) error {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": group + "/" + version, "kind": kind,
			"metadata": map[string]any{"name": w.name(i), "namespace": w.ns},
			"spec":     map[string]any{"size": int64(1)},
		}}
		w.markSent(evCreate, w.name(i), time.Now())
		return retried(ctx, "create "+w.name(i), func() error {
			_, err := w.parents().Create(ctx, obj, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) { // an earlier attempt got through
				return nil
			}
			return err
		})
	})
}

func (w *workload) resizeAll(ctx context.Context, size int64) error {
	patch := fmt.Appendf(nil, `{"spec":{"size":%d}}`, size)
	return w.each(ctx, func(ctx context.Context, i int) error {
		w.markSent(evUpdate, w.name(i), time.Now())
		return retried(ctx, "resize "+w.name(i), func() error {
			_, err := w.parents().Patch(ctx, w.name(i), types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		})
	})
}

// deleteAll deletes every parent, one request each: a single
// deletecollection of thousands of objects outlasts the API server's
// request timeout on a loaded machine.
func (w *workload) deleteAll(ctx context.Context) error {
	return w.each(ctx, func(ctx context.Context, i int) error {
		w.markSent(evDelete, w.name(i), time.Now())
		return retried(ctx, "delete "+w.name(i), func() error {
			err := w.parents().Delete(ctx, w.name(i), metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) { // an earlier attempt got through
				return nil
			}
			return err
		})
	})
}

// retried retries what an overloaded API server or a reset connection
// makes fail, a few times; anything else fails the run.
func retried(ctx context.Context, what string, fn func() error) error {
	var err error
	for attempt := range 5 {
		if err = fn(); err == nil || apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// waitEvery polls cond every interval until it holds; it returns when it
// first held.
func waitEvery(ctx context.Context, timeout time.Duration, what string, interval time.Duration, cond func(context.Context) (bool, string, error)) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var seen string
	for {
		began := time.Now()
		ok, last, err := cond(ctx)
		if err != nil {
			last = err.Error()
		}
		if ok {
			return began, nil // the lists show the state as of about then
		}
		seen = last
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: not after %s (last seen: %s)", what, timeout, seen)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s: %w (last seen: %s)", what, ctx.Err(), seen)
		case <-time.After(interval):
		}
	}
}
