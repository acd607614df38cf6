package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/metrics/metricstest"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// TestObjectRelabelledDuringItsFirstPassIsLetGo: the label-filtered watch
// reports an object that leaves the selection as deleted, with content
// from before a pass that is still running wrote its state annotation.
// The object must still be let go of, even when the key's next pass is
// the only one it gets (one worker, busy with another object).
func TestObjectRelabelledDuringItsFirstPassIsLetGo(t *testing.T) {
	ns := newNamespace(t)
	arrived := make(chan struct{}, 1)
	proceed := make(chan struct{})
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Object.GetName() == "blocker" {
			time.Sleep(time.Second) // the handler's work: keeps the one worker busy
			return 200, nil
		}
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-proceed
		return 200, nil
	})
	_, reg := startGatewayWithOptions(t, runner.Options{Workers: 1}, operatorFor(t, "racer", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"managed": "yes"}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	var once sync.Once
	release := func() { once.Do(func() { close(proceed) }) }
	t.Cleanup(release) // before the gateway stops: its pass waits for it
	createLabelledWidget(t, ns, "leaver", map[string]string{"managed": "yes"})
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("create not called for leaver")
	}
	adds := func() float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "workqueue_adds_total" {
				v, _ := metricstest.Value(f, map[string]string{"name": "racer"})
				return v
			}
		}
		return 0
	}
	before := adds()
	createLabelledWidget(t, ns, "blocker", map[string]string{"managed": "yes"})
	updateWidget(t, ns, "leaver", func(w *unstructured.Unstructured) { w.SetLabels(nil) })
	// blocker's add, then leaver's departure (one watch, in order): blocker
	// is queued before leaver's next pass.
	eventually(t, 30*time.Second, func() error {
		if got := adds() - before; got < 2 {
			return fmt.Errorf("%v of 2 queue adds (blocker's, leaver's departure)", got)
		}
		return nil
	})
	release()
	eventually(t, 30*time.Second, func() error { return releasedBy(t, ns, "leaver", "racer") })
}
