package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/test/invariant"
)

// handlerDelay keeps calls in flight while a WebhookOperator is edited.
const handlerDelay = 300 * time.Millisecond

// registerOperator creates op as a WebhookOperator object, deleted when
// the test ends.
func registerOperator(t *testing.T, op *spec.WebhookOperator) {
	t.Helper()
	raw, err := json.Marshal(op.Spec)
	if err != nil {
		t.Fatal(err)
	}
	var specMap map[string]any
	if err := json.Unmarshal(raw, &specMap); err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": spec.APIVersion, "kind": spec.Kind,
		"metadata": map[string]any{"name": op.Name}, "spec": specMap,
	}}
	client := dyn(t).Resource(engine.OperatorResource)
	if _, err := client.Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create WebhookOperator %s: %v", op.Name, err)
	}
	t.Cleanup(func() { _ = client.Delete(context.Background(), op.Name, metav1.DeleteOptions{}) })
}

// editOperator changes a WebhookOperator's spec with mutate and returns
// the new generation.
func editOperator(t *testing.T, name string, mutate func(*spec.OperatorSpec)) int64 {
	t.Helper()
	client := dyn(t).Resource(engine.OperatorResource)
	var gen int64
	eventually(t, 10*time.Second, func() error {
		cur, err := client.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		raw, _ := json.Marshal(cur.Object["spec"])
		var s spec.OperatorSpec
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		mutate(&s)
		raw, _ = json.Marshal(s)
		var specMap map[string]any
		_ = json.Unmarshal(raw, &specMap)
		cur.Object["spec"] = specMap
		out, err := client.Update(context.Background(), cur, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		gen = out.GetGeneration()
		return nil
	})
	return gen
}

// waitRunning waits until the WebhookOperator runs generation gen.
func waitRunning(t *testing.T, name string, gen int64) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		c := condition(t, name, spec.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration < gen {
			return fmt.Errorf("Ready = %+v, want True at generation %d", c, gen)
		}
		return nil
	})
}

// writer keeps changing a set of Widgets, one at a time, while a test
// edits their operator. Writes and the test's Left records are ordered by
// one lock, so that the history says which change came after an object
// was let go.
type writer struct {
	run  *faultRun
	mu   sync.Mutex
	live []string
	n    int
	stop chan struct{}
	done chan struct{}
}

// startWriter changes one of names every 50 ms until stopped.
func startWriter(t *testing.T, run *faultRun, names []string) *writer {
	w := &writer{run: run, live: slices.Clone(names), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			if err := w.step(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *writer) step() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.live) == 0 {
		return nil
	}
	w.n++
	name := w.live[w.n%len(w.live)]
	return w.run.setImage(context.Background(), name, fmt.Sprintf("v%d", w.n))
}

// written is how many writes were made.
func (w *writer) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// halt stops the writes and waits for the last one.
func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// remove deletes a Widget and stops writing to it.
func (w *writer) remove(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	obj, err := w.run.client.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.run.remove(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	w.live = slices.DeleteFunc(w.live, func(n string) bool { return n == name })
	return obj
}

// left records that the gateway let go of obj (see invariant.Left), once
// it did: the Widget is gone or holds neither finalizer nor state of op.
func (w *writer) left(t *testing.T, obj *unstructured.Unstructured, op string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		err := releasedBy(t, w.run.ns, obj.GetName(), op)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	w.run.chk.Record(t, invariant.Left, obj)
}

// createLabelled creates a Widget with labels and records it.
func (f *faultRun) createLabelled(t *testing.T, name string, labels map[string]string) *unstructured.Unstructured {
	t.Helper()
	obj := f.object(name, "v0")
	obj.SetLabels(labels)
	out, err := f.client.Create(context.Background(), obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return f.chk.Record(t, invariant.Created, out)
}

// arrivals logs when each callback was called, as the handler saw it.
type arrivals struct {
	mu sync.Mutex
	at map[string][]time.Time // by callback id, or by "url:" + handler name
}

func (a *arrivals) note(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at = map[string][]time.Time{}
	}
	a.at[key] = append(a.at[key], time.Now())
}

// since counts the calls of key that arrived after t, and all of them.
func (a *arrivals) since(key string, t time.Time) (after, all int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.at[key] {
		if at.After(t) {
			after++
		}
	}
	return after, len(a.at[key])
}

// slowHandler answers well after handlerDelay, unless fail says to answer
// 503 for that request; every arrival is noted under the callback id and
// under "url:"+name.
func slowHandler(name string, log *arrivals, fail func(callbacks.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.note(req.Callback)
		log.note("url:" + name)
		select {
		case <-r.Context().Done():
		case <-time.After(handlerDelay):
		}
		if fail != nil && fail(req) {
			http.Error(w, "not today", http.StatusServiceUnavailable)
			return
		}
		writeAnswer(w, req)
	})
}

// deliveredTo reports whether callback id answered successfully with the
// current essence of every Widget of names.
func deliveredTo(t *testing.T, run *faultRun, id string, names []string) error {
	calls := run.chk.Recorder.Calls()
	for _, name := range names {
		obj, err := run.client.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := invariant.EssenceOf(obj)
		if !slices.ContainsFunc(calls, func(c invariant.Call) bool {
			return c.Callback == id && c.ObjectUID == obj.GetUID() && c.Essence == want &&
				(c.Outcome == invariant.Succeeded || c.Outcome == invariant.Requeued)
		}) {
			return fmt.Errorf("%s's current essence (rv %s) never reached %q", name, obj.GetResourceVersion(), id)
		}
	}
	return nil
}
