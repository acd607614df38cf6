package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// replica is one gateway of a leader-elected set.
type replica struct {
	gw       *runner.Gateway
	reg      *prometheus.Registry
	cancel   context.CancelFunc
	finished chan struct{}
	err      error // RunElected's, once finished is closed

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
	return startReplicaOn(t, cfg, e, ops...)
}

// startReplicaOn starts a replica that talks to the API server through c.
func startReplicaOn(t *testing.T, c *rest.Config, e runner.Election, ops ...*spec.WebhookOperator) *replica {
	t.Helper()
	r := &replica{reg: prometheus.NewRegistry(), finished: make(chan struct{}), t: t}
	var err error
	r.gw, err = runner.New(c, runner.Options{Operators: ops, Registerer: r.reg,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatalf("wire gateway: %v", err)
	}
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	go func() {
		r.err = r.gw.RunElected(ctx, e)
		close(r.finished)
	}()
	t.Cleanup(r.stop)
	return r
}

// ended reports whether RunElected returned.
func (r *replica) ended() bool {
	select {
	case <-r.finished:
		return true
	default:
		return false
	}
}

// stop cancels the replica and waits for it; later calls return at once.
func (r *replica) stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case <-r.finished:
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

	leases := kube(t).CoordinationV1().Leases(ns)
	held, err := leases.Get(context.Background(), e.Name, metav1.GetOptions{})
	if err != nil || held.Spec.HolderIdentity == nil {
		t.Fatalf("read the Lease the leader holds: %v, %v", held, err)
	}
	leader.stop() // stops the operators, then releases the Lease
	after, err := leases.Get(context.Background(), e.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("read the Lease: %v", err)
	}
	if h := after.Spec.HolderIdentity; h != nil && *h == *held.Spec.HolderIdentity {
		t.Errorf("the Lease still names the leader that shut down (%s): it was not released, the standby waits for it to run out", *h)
	}
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

// A leader whose Lease requests go unanswered past its renew deadline (a
// network blip, a frozen process) loses the Lease to a standby. When its
// connection comes back it must not free the Lease the standby now holds:
// a third replica would take it and two would lead at once.
func TestLeaderElectionALeaderThatLostTheLeaseNeverFreesIt(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	op := operatorFor(t, "lostlease", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	e := runner.Election{Namespace: ns, Name: "opgate-test",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
	history := watchLease(t, ns, e.Name)
	gate := &leaseGate{}
	ac := rest.CopyConfig(cfg)
	ac.Wrap(func(rt http.RoundTripper) http.RoundTripper { return gate.wrap(rt) })
	a := startReplicaOn(t, ac, e, op)
	eventually(t, 20*time.Second, func() error {
		if !a.leading(t) {
			return fmt.Errorf("the first replica does not lead yet")
		}
		return nil
	})
	b, c := startReplica(t, e, op), startReplica(t, e, op)

	gate.shut()
	eventually(t, 20*time.Second, func() error {
		if !b.leading(t) && !c.leading(t) {
			return fmt.Errorf("no standby took the Lease")
		}
		return nil
	})
	gate.open() // within the old leader's release timeout (its renew deadline)
	eventually(t, 30*time.Second, func() error {
		if !a.ended() {
			return fmt.Errorf("the old leader still runs")
		}
		return nil
	})
	if !errors.Is(a.err, runner.ErrLeadershipLost) {
		t.Errorf("the old leader returned %v, want ErrLeadershipLost", a.err)
	}
	holders := history.upToNow(t)
	for _, holder := range holders[1:] {
		if holder == "" {
			t.Fatalf("the Lease was freed after a standby took it over: the old leader released a Lease it no longer held; holders in order %q", holders)
		}
	}
}

// leaseGate, while shut, holds the requests to Leases that pass through it
// until it opens or the request's context ends: an API server that does not
// answer one replica for a while.
type leaseGate struct {
	mu      sync.Mutex
	opening chan struct{} // nil while open
}

func (g *leaseGate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opening == nil {
		g.opening = make(chan struct{})
	}
}

func (g *leaseGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opening != nil {
		close(g.opening)
		g.opening = nil
	}
}

func (g *leaseGate) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if strings.Contains(req.URL.Path, "/leases") {
			g.mu.Lock()
			opening := g.opening
			g.mu.Unlock()
			if opening != nil {
				select {
				case <-opening:
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}
		}
		return next.RoundTrip(req)
	})
}

// leaseHistory is every holder a Lease had, in order, as a watch saw it.
type leaseHistory struct {
	ns, name string
	mu       sync.Mutex
	holders  []string
	seen     map[string]bool // resourceVersions
}

// watchLease records the holders of a Lease, from before it exists.
func watchLease(t *testing.T, ns, name string) *leaseHistory {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := kube(t).CoordinationV1().Leases(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatalf("watch Lease: %v", err)
	}
	h := &leaseHistory{ns: ns, name: name, seen: map[string]bool{}}
	go func() {
		for ev := range w.ResultChan() {
			l, ok := ev.Object.(*coordinationv1.Lease)
			if !ok {
				continue
			}
			holder := ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			h.mu.Lock()
			h.seen[l.ResourceVersion] = true
			if n := len(h.holders); n == 0 || h.holders[n-1] != holder {
				h.holders = append(h.holders, holder)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

// upToNow is the holders up to the Lease as it is now: it waits for the
// watch to have seen the Lease's current resourceVersion.
func (h *leaseHistory) upToNow(t *testing.T) []string {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		l, err := kube(t).CoordinationV1().Leases(h.ns).Get(context.Background(), h.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.seen[l.ResourceVersion] {
			return fmt.Errorf("the watch has not seen resourceVersion %s yet", l.ResourceVersion)
		}
		return nil
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.holders...)
}

// A replica that can never take the Lease (here its namespace does not
// exist; RBAC or an unreachable API server do the same) is not a healthy
// standby: no replica leads, and a rolling update must not count it ready.
func TestLeaderElectionAStandbyThatCannotCreateTheLeaseIsNotReady(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	op := operatorFor(t, "nolease", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	e := runner.Election{Namespace: ns + "-missing", Name: "opgate-test",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
	r := startReplica(t, e, op)
	eventually(t, 20*time.Second, func() error {
		err := r.gw.Ready()
		if err == nil {
			return fmt.Errorf("ready, though it cannot create its Lease and no replica leads")
		}
		if msg := err.Error(); !strings.Contains(msg, e.Namespace+"/"+e.Name) || !strings.Contains(msg, "not found") {
			return fmt.Errorf("not ready, but the reason names neither the Lease %s/%s nor the API's error: %v", e.Namespace, e.Name, err)
		}
		t.Logf("/readyz: %v", err)
		return nil
	})
	if r.leading(t) {
		t.Errorf("leads without a Lease")
	}
}
