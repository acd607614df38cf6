package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
	"github.com/opgate/opgate/test/invariant"
)

// editScenario is one live edit of a WebhookOperator while a slow handler
// has calls in flight and a writer keeps changing every Widget.
type editScenario struct {
	t    *testing.T
	name string // the WebhookOperator's
	run  *faultRun
	log  *arrivals
	objs map[string]*unstructured.Unstructured // as created
}

func newEditScenario(t *testing.T) *editScenario {
	ns := newNamespace(t)
	return &editScenario{t: t, name: fmt.Sprintf("edited-%d", time.Now().UnixNano()%100000),
		run: newFaultRun(t, ns), log: &arrivals{}, objs: map[string]*unstructured.Unstructured{}}
}

// create creates Widgets with labels, named after their prefix.
func (s *editScenario) create(prefix string, n int, labels map[string]string) []string {
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		s.objs[name] = s.run.createLabelled(s.t, name, labels)
		names = append(names, name)
	}
	return names
}

// atLeast waits until key (a callback id or "url:"+handler) was called n
// times after t.
func (s *editScenario) atLeast(key string, n int, after time.Time) {
	s.t.Helper()
	eventually(s.t, 30*time.Second, func() error {
		if got, _ := s.log.since(key, after); got < n {
			return fmt.Errorf("%s called %d times since %s, want %d", key, got, after.Format("15:04:05.000"), n)
		}
		return nil
	})
}

// noneSince fails the test if key was called after t.
func (s *editScenario) noneSince(key string, t time.Time, why string) {
	s.t.Helper()
	if after, all := s.log.since(key, t); after > 0 {
		s.t.Errorf("%s called %d times (of %d) after %s", key, after, all, why)
	}
}

func TestWebhookOperatorEditedLiveLosesNoChange(t *testing.T) {
	t.Run("callback added and removed", func(t *testing.T) {
		s := newEditScenario(t)
		// legacy always fails: every update round stays open for it.
		srv := newRecordedServer(t, s.run, slowHandler("h", s.log, func(r callbacks.Request) bool { return r.Callback == "legacy" }))
		op := faultOperator(t, s.name, s.run.ns, srv.URL, 2*time.Second, func(o *spec.OperatorSpec) {
			o.Callbacks = append(o.Callbacks, spec.Callback{ID: "legacy", Events: []spec.Event{spec.EventUpdate}})
		})
		exp := invariant.ExpectFrom(op)
		exp.Update = slices.DeleteFunc(exp.Update, func(id string) bool { return id == "legacy" })
		s.run.chk.Expect = exp // legacy is removed: nothing is owed to it
		startGateway(t)
		registerOperator(t, op)
		names := s.create("w", 4, nil)
		w := startWriter(t, s.run, names)
		began := time.Now()
		s.atLeast("legacy", 4, began)
		edited := time.Now()
		gen := editOperator(t, s.name, func(o *spec.OperatorSpec) {
			o.Callbacks = slices.DeleteFunc(o.Callbacks, func(cb spec.Callback) bool { return cb.ID == "legacy" })
			o.Callbacks = append(o.Callbacks, spec.Callback{ID: "audit", Events: []spec.Event{spec.EventUpdate}})
		})
		// The last changes are made while legacy holds the rounds open:
		// the rounds that close once it is gone still owe them to resize.
		w.remove(t, names[0])
		w.halt()
		waitRunning(t, s.name, gen)
		applied := time.Now()
		s.atLeast("audit", 3, edited)
		_, took := s.run.chk.AssertEventually(t, 40*time.Second)
		t.Logf("edit applied %s after it was written; invariants hold %s after the last change", applied.Sub(edited).Round(100*time.Millisecond), took.Round(100*time.Millisecond))
		s.noneSince("legacy", applied, "it was removed")
		// The added callback sees every change made once it runs: at least
		// each Widget's current essence.
		eventually(t, 20*time.Second, func() error { return deliveredTo(t, s.run, "audit", names[1:]) })
		// Nothing of the removed callback stays on the objects: its failures
		// would count as failing callbacks and keep Reconciled False forever.
		eventually(t, 20*time.Second, func() error { return noProgressOf(t, s.run, s.name, "legacy", names[1:]) })
	})

	t.Run("handler URL changed", func(t *testing.T) {
		s := newEditScenario(t)
		// The old URL answers 503: every delivery has a retry pending there.
		old := newRecordedServer(t, s.run, slowHandler("old", s.log, func(callbacks.Request) bool { return true }))
		moved := newRecordedServer(t, s.run, slowHandler("new", s.log, nil))
		op := s.run.expect(faultOperator(t, s.name, s.run.ns, old.URL, 2*time.Second, nil))
		startGateway(t)
		registerOperator(t, op)
		names := s.create("w", 4, nil)
		w := startWriter(t, s.run, names)
		s.atLeast("url:old", 6, time.Now())
		gen := editOperator(t, s.name, func(o *spec.OperatorSpec) { o.Handler.URL = moved.URL })
		waitRunning(t, s.name, gen)
		applied := time.Now()
		s.atLeast("url:new", 8, applied)
		w.remove(t, names[0])
		w.halt()
		_, took := s.run.chk.AssertEventually(t, 40*time.Second)
		t.Logf("invariants hold %s after the last change", took.Round(100*time.Millisecond))
		s.noneSince("url:old", applied, "the URL changed")
	})

	t.Run("selector narrowed", func(t *testing.T) {
		s := newEditScenario(t)
		srv := newRecordedServer(t, s.run, slowHandler("h", s.log, nil))
		op := s.run.expect(faultOperator(t, s.name, s.run.ns, srv.URL, 2*time.Second, nil))
		startGateway(t)
		registerOperator(t, op)
		gold := s.create("gold", 3, map[string]string{"tier": "gold"})
		plain := s.create("plain", 3, map[string]string{"tier": "plain"})
		w := startWriter(t, s.run, append(slices.Clone(gold), plain...))
		for _, name := range append(slices.Clone(gold), plain...) {
			eventually(t, 30*time.Second, func() error { return stateHandled(t, s.run.ns, name, s.name) })
		}
		gen := editOperator(t, s.name, func(o *spec.OperatorSpec) {
			o.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}
		})
		waitRunning(t, s.name, gen)
		applied := time.Now()
		for _, name := range plain {
			w.left(t, s.objs[name], s.name)
		}
		s.atLeast("resize", 4, applied)
		w.remove(t, gold[0])
		w.remove(t, plain[0]) // no delete callback: the gateway let go of it
		w.halt()
		_, took := s.run.chk.AssertEventually(t, 40*time.Second)
		t.Logf("invariants hold %s after the last change", took.Round(100*time.Millisecond))
	})
}

func TestWebhookOperatorDeletedMidRoundLetsGoOfEverything(t *testing.T) {
	s := newEditScenario(t)
	// clean always fails: deleted Widgets stay Terminating, held by it.
	srv := newRecordedServer(t, s.run, slowHandler("h", s.log, func(r callbacks.Request) bool { return r.Callback == "clean" }))
	op := s.run.expect(faultOperator(t, s.name, s.run.ns, srv.URL, 2*time.Second, nil))
	startGateway(t)
	registerOperator(t, op)
	names := s.create("w", 6, nil)
	w := startWriter(t, s.run, names)
	s.atLeast("resize", 4, time.Now())
	deleted := []*unstructured.Unstructured{w.remove(t, names[0]), w.remove(t, names[1])}
	s.atLeast("clean", 2, time.Now())
	if err := dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), s.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	waitOperatorGone(t, s.name)
	gone := time.Now()
	t.Logf("WebhookOperator gone %s after its deletion", gone.Sub(began).Round(100*time.Millisecond))
	for _, obj := range deleted {
		w.left(t, obj, s.name)
	}
	for _, name := range names[2:] {
		w.left(t, s.objs[name], s.name)
	}
	// Changes and deletions after the operator went call nothing, and a
	// deletion waits for no finalizer.
	n := w.written()
	eventually(t, 20*time.Second, func() error {
		if got := w.written() - n; got < 8 {
			return fmt.Errorf("%d writes since the operator went, want 8", got)
		}
		return nil
	})
	w.remove(t, names[2])
	waitWidgetGone(t, s.run.ns, names[2])
	w.halt()
	s.run.chk.AssertEventually(t, 30*time.Second)
	s.noneSince("url:h", gone, "the WebhookOperator was gone")
}

// noProgressOf fails while any Widget of names keeps retry progress of
// callback id in the operator's state annotation.
func noProgressOf(t *testing.T, run *faultRun, operator, id string, names []string) error {
	for _, name := range names {
		obj, err := run.client.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st, err := state.Decode(obj.GetAnnotations()["opgate.dev/state."+operator])
		if err != nil {
			return err
		}
		if p := st.Progress[id]; p != nil {
			return fmt.Errorf("%s keeps the progress of callback %q, which the operator no longer has: %+v", name, id, *p)
		}
	}
	return nil
}
