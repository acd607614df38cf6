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
// objects.
func BenchmarkStats(b *testing.B) {
	c := statsController(b, 10000)
	b.ReportAllocs()
	for b.Loop() {
		c.Stats()
	}
}
