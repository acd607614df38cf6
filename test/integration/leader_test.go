package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// replica is one gateway of a leader-elected pair.
type replica struct {
	gw     *runner.Gateway
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error

	t        *testing.T
	stopOnce sync.Once
}

// leading reads the replica's opgate_leader gauge.
func (r *replica) leading(t *testing.T) bool {
	t.Helper()
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() == "opgate_leader" {
			for _, m := range f.GetMetric() {
				if m.GetGauge().GetValue() == 1 {
					return true
				}
			}
		}
	}
	return false
}

func startReplica(t *testing.T, e runner.Election, ops ...*spec.WebhookOperator) *replica {
	t.Helper()
	r := &replica{reg: prometheus.NewRegistry(), done: make(chan error, 1), t: t}
	var err error
	r.gw, err = runner.New(cfg, runner.Options{Operators: ops, Registerer: r.reg,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatalf("wire gateway: %v", err)
	}
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	go func() { r.done <- r.gw.RunElected(ctx, e) }()
	t.Cleanup(r.stop)
	return r
}

// stop cancels the replica and waits for it; later calls return at once.
func (r *replica) stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			r.t.Errorf("replica did not stop within 30s")
		}
	})
}

func TestLeaderElectionOneReplicaActsStandbyIsReadyAndTakesOver(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	op := operatorFor(t, "elected", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	// Both replicas run in this process, on one host: the identity must
	// tell them apart.
	e := runner.Election{Namespace: ns, Name: "opgate-test",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
	a, b := startReplica(t, e, op), startReplica(t, e, op)

	var leader, standby *replica
	eventually(t, 20*time.Second, func() error {
		la, lb := a.leading(t), b.leading(t)
		switch {
		case la && lb:
			return fmt.Errorf("both replicas lead")
		case la:
			leader, standby = a, b
		case lb:
			leader, standby = b, a
		default:
			return fmt.Errorf("no replica leads yet")
		}
		return nil
	})
	eventually(t, 20*time.Second, func() error {
		if err := leader.gw.Ready(); err != nil {
			return fmt.Errorf("leader not ready: %v", err)
		}
		if err := standby.gw.Ready(); err != nil {
			return fmt.Errorf("standby not ready (a rolling update would never finish): %v", err)
		}
		return nil
	})
	createWidget(t, ns, "first", 1)
	eventually(t, 20*time.Second, func() error { return called(h, "create", 1) })
	if standby.leading(t) {
		t.Fatalf("the standby leads too")
	}

	leader.stop() // releases the Lease
	eventually(t, 20*time.Second, func() error {
		if !standby.leading(t) {
			return fmt.Errorf("the standby did not take over")
		}
		return nil
	})
	createWidget(t, ns, "second", 1)
	eventually(t, 20*time.Second, func() error { return called(h, "create", 2) })
	if err := standby.gw.Ready(); err != nil {
		t.Errorf("new leader not ready: %v", err)
	}
}
