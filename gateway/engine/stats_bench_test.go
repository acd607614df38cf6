package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/metrics"
	"github.com/opgate/opgate/gateway/state"
)

// statsController is relatedController whose parents all carry a handled
// state (with its essence), as after convergence; one, w00000, has a
// failing callback.
func statsController(tb testing.TB, n int) *Controller {
	c := relatedController(tb, n)
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	c.Metrics = m
	idx := c.parent.informers["ns"].GetIndexer()
	for _, o := range idx.List() {
		// A new object, as an informer stores it: the indexes are kept
		// from the old one and the new.
		u := o.(*unstructured.Unstructured).DeepCopy()
		st := &state.State{UID: string(u.GetUID())}
		if err := st.SetHandled(essence.Of(u), state.DefaultEssenceCap); err != nil {
			tb.Fatal(err)
		}
		if u.GetName() == "w00000" {
			st.ProgressOf("create", "create").Message = "boom"
		}
		v, err := st.Encode()
		if err != nil {
			tb.Fatal(err)
		}
		u.SetAnnotations(map[string]string{c.stateAnnotation(): v})
		if err := idx.Update(u); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

func TestStatsCountFailingCallbacks(t *testing.T) {
	s := statsController(t, 20).Stats()
	if s.WatchedObjects != 20 || s.CallbacksFailing != 1 || s.LastError == "" {
		t.Errorf("stats = %+v, want 20 watched, 1 failing with its message", s)
	}
}

// BenchmarkStats is the periodic status summary over 10 000 converged
// objects: after a parent event (a walk of the cache), and with none since
// the last one.
func BenchmarkStats(b *testing.B) {
	c := statsController(b, 10000)
	b.Run("afterAnEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.parentEvents.Add(1)
			c.Stats()
		}
	})
	b.Run("idle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Stats()
		}
	})
}

// The summary follows the cache through the parent informer's event
// handlers: a change is counted once its event has been handled, and with
// no event since the last summary the cache is not walked again (every 10
// s, every object, for an operator sitting idle).
func TestStatsFollowParentEvents(t *testing.T) {
	c := statsController(t, 20)
	handler := c.parentHandler()
	idx := c.parent.informers["ns"].GetIndexer()
	if s := c.Stats(); s.WatchedObjects != 20 || s.CallbacksFailing != 1 {
		t.Fatalf("stats = %+v, want 20 watched, 1 failing", s)
	}
	obj, _, err := idx.GetByKey("ns/w00001")
	if err != nil || obj == nil {
		t.Fatalf("w00001: %v", err)
	}
	gone := obj.(*unstructured.Unstructured)
	if err := idx.Delete(gone); err != nil {
		t.Fatal(err)
	}
	// The store changed, its event is not handled yet: the last summary holds.
	if s := c.Stats(); s.WatchedObjects != 20 {
		t.Errorf("before the event: %d watched, want the last summary's 20", s.WatchedObjects)
	}
	for _, tc := range []struct {
		name  string
		event func()
		want  int
	}{
		{"a delete", func() { handler.OnDelete(gone) }, 19},
		{"an add", func() {
			if err := idx.Add(gone); err != nil {
				t.Fatal(err)
			}
			handler.OnAdd(gone, false)
		}, 20},
		{"an update that sets a failing callback's progress", func() {
			u := gone.DeepCopy()
			st := &state.State{UID: string(u.GetUID())}
			st.ProgressOf("update", "update").Message = "bang"
			v, err := st.Encode()
			if err != nil {
				t.Fatal(err)
			}
			u.SetAnnotations(map[string]string{c.stateAnnotation(): v})
			if err := idx.Update(u); err != nil {
				t.Fatal(err)
			}
			handler.OnUpdate(gone, u)
		}, 20},
	} {
		tc.event()
		if s := c.Stats(); s.WatchedObjects != tc.want {
			t.Errorf("after %s: %d watched, want %d", tc.name, s.WatchedObjects, tc.want)
		}
	}
	if s := c.Stats(); s.CallbacksFailing != 2 {
		t.Errorf("after the update: %d failing, want 2", s.CallbacksFailing)
	}
}

// What a summary counts follows each object's updates: a deletion waiting
// for this operator's finalizer is pending until the finalizer goes; a
// failing callback counts until its progress is cleared.
func TestStatsFollowFinalizersAndProgressThroughUpdates(t *testing.T) {
	c := statsController(t, 5)
	handler := c.parentHandler()
	idx := c.parent.informers["ns"].GetIndexer()
	obj, _, err := idx.GetByKey("ns/w00003")
	if err != nil || obj == nil {
		t.Fatalf("w00003: %v", err)
	}
	base := obj.(*unstructured.Unstructured)
	withProgress := func(u *unstructured.Unstructured, msg string) {
		st := &state.State{UID: string(u.GetUID())}
		if msg != "" {
			st.ProgressOf("update", "update").Message = msg
		}
		v, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		u.SetAnnotations(map[string]string{c.stateAnnotation(): v})
	}
	deleting := func(u *unstructured.Unstructured, finalizers ...string) {
		u.SetDeletionTimestamp(&metav1.Time{Time: time.Now()})
		u.SetFinalizers(finalizers)
	}
	for _, tc := range []struct {
		name             string
		edit             func(u *unstructured.Unstructured)
		pending, failing int
		lastErrorNames   string
	}{
		{"deleted, holding this operator's finalizer", func(u *unstructured.Unstructured) { deleting(u, "x.io/other", c.finalizer()) }, 1, 1, "w00000"},
		{"deleted, holding another operator's finalizer only", func(u *unstructured.Unstructured) { deleting(u, "x.io/other") }, 0, 1, "w00000"},
		{"holding the finalizer, not deleted", func(u *unstructured.Unstructured) { u.SetFinalizers([]string{c.finalizer()}) }, 0, 1, "w00000"},
		{"a failing callback too", func(u *unstructured.Unstructured) { deleting(u, c.finalizer()); withProgress(u, "bang") }, 1, 2, "w00000"},
		{"its progress cleared", func(u *unstructured.Unstructured) { withProgress(u, "") }, 0, 1, "w00000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, _, _ := idx.GetByKey("ns/w00003")
			u := base.DeepCopy()
			tc.edit(u)
			if err := idx.Update(u); err != nil {
				t.Fatal(err)
			}
			handler.OnUpdate(old, u)
			s := c.Stats()
			if s.WatchedObjects != 5 || s.FinalizersPending != tc.pending || s.CallbacksFailing != tc.failing {
				t.Errorf("stats = %+v, want 5 watched, %d pending, %d failing", s, tc.pending, tc.failing)
			}
			// The same object named every time: the first by key.
			if !strings.Contains(s.LastError, tc.lastErrorNames) {
				t.Errorf("last error %q, want it to name %s", s.LastError, tc.lastErrorNames)
			}
		})
	}
}

// BenchmarkIndexForStats is what the summary's index costs each parent
// event (run for the old object and the new).
func BenchmarkIndexForStats(b *testing.B) {
	c := statsController(b, 1)
	obj, _, err := c.parent.informers["ns"].GetIndexer().GetByKey("ns/w00000")
	if err != nil || obj == nil {
		b.Fatalf("w00000: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := c.indexForStats(obj); len(v) != 1 {
			b.Fatalf("index values %v, want failing", v)
		}
	}
}
