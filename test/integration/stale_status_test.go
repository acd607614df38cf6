package integration

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// lateGate holds, while shut, one replica's Lease requests and its widget
// status patches: a replica cut off from the API server, whose requests
// sent meanwhile land once the network comes back. landed counts its
// status patches the API server took after the gate opened.
type lateGate struct {
	mu      sync.Mutex
	opening chan struct{}
	wasShut atomic.Bool
	held    atomic.Int32
	landed  atomic.Int32
}

func (g *lateGate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opening == nil {
		g.opening = make(chan struct{})
		g.wasShut.Store(true)
	}
}

func (g *lateGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opening != nil {
		close(g.opening)
		g.opening = nil
	}
}

func (g *lateGate) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		status := req.Method == http.MethodPatch && strings.Contains(req.URL.Path, "/widgets/") && strings.HasSuffix(req.URL.Path, "/status")
		if strings.Contains(req.URL.Path, "/leases") || status {
			g.mu.Lock()
			opening := g.opening
			g.mu.Unlock()
			if opening != nil {
				if status {
					g.held.Add(1)
				}
				select {
				case <-opening:
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}
		}
		resp, err := next.RoundTrip(req)
		if status && err == nil && resp.StatusCode == http.StatusOK && g.wasShut.Load() {
			g.landed.Add(1)
		}
		return resp, err
	})
}

// A leader cut off from the API server answers a change, loses the Lease,
// and the status write recording that answer (held to the pass's end, as
// with status.conditions, and made under the 15 s record deadline) reaches
// the API server after the new leader has handled a newer change. Its 409
// is read again, and the state annotation no longer holds what the old
// leader's pass began from: the write is dropped, as its state write is,
// and the new leader's status stays. Until 2026-12-03 it was made again
// pinned to what it read, and the object kept the status of an older spec
// while its state said the newer one was handled (found by review rv47).
func TestAStaleLeadersStatusDoesNotOverwriteTheNewLeaders(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		size, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size")
		return 200, map[string]any{"status": map[string]any{"message": fmt.Sprintf("size-%d", size)}}
	})
	op := operatorFor(t, "stale", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "update", Events: []spec.Event{spec.EventUpdate}},
		}
	})
	e := runner.Election{Namespace: ns, Name: "opgate-test",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
	gate := &lateGate{}
	ac := rest.CopyConfig(cfg)
	ac.Wrap(func(rt http.RoundTripper) http.RoundTripper { return gate.wrap(rt) })
	a := startReplicaOn(t, ac, e, op)
	eventually(t, 20*time.Second, func() error {
		if !a.leading(t) {
			return fmt.Errorf("the first replica does not lead yet")
		}
		return nil
	})
	b := startReplica(t, e, op)

	createWidget(t, ns, "w", 1)
	eventually(t, 20*time.Second, func() error {
		if err := statusMessage(t, ns, "w", "size-1"); err != nil {
			return err
		}
		return stateHandled(t, ns, "w", "stale")
	})

	gate.shut()
	updateWidget(t, ns, "w", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	eventually(t, 10*time.Second, func() error {
		if gate.held.Load() == 0 {
			return fmt.Errorf("the leader has not written the update's status yet")
		}
		return nil
	})
	eventually(t, 20*time.Second, func() error {
		if !b.leading(t) {
			return fmt.Errorf("the standby has not taken over")
		}
		return nil
	})
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "w", "size-2") })
	updateWidget(t, ns, "w", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(3), "spec", "size")
	})
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "w", "size-3") })
	t.Logf("new leader answered size 3; opening the old leader's connection")
	gate.open() // within the old leader's 15 s record deadline
	eventually(t, 30*time.Second, func() error {
		if !a.ended() {
			return fmt.Errorf("the old leader still runs")
		}
		return nil
	})
	// The old leader's writes are over once it ended.
	if n := gate.landed.Load(); n != 0 {
		t.Errorf("%d status writes of the old leader landed after it lost its Lease, want none", n)
	}
	if err := statusMessage(t, ns, "w", "size-3"); err != nil {
		t.Errorf("after the old leader's late write, spec.size is 3 but %v: the stale leader's answer for size 2 overwrote the new leader's", err)
	}
}
