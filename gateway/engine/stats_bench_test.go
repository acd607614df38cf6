package engine

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/metrics"
	"github.com/opgate/opgate/gateway/state"
)

// statsController is relatedController whose parents all carry a handled
// state (with its essence), as after convergence; one has a failing
// callback.
func statsController(tb testing.TB, n int) *Controller {
	c := relatedController(tb, n)
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	c.Metrics = m
	idx := c.parent.informers["ns"].GetIndexer()
	for i, o := range idx.List() {
		u := o.(*unstructured.Unstructured)
		st := &state.State{UID: string(u.GetUID())}
		if err := st.SetHandled(essence.Of(u), state.DefaultEssenceCap); err != nil {
			tb.Fatal(err)
		}
		if i == 0 {
			st.ProgressOf("create").Message = "boom"
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
			st.ProgressOf("update").Message = "bang"
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
