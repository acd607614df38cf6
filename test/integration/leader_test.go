package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/rbac"
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

// A leader that loses its Lease (here the test, as the new leader, takes
// it over) stops and writes nothing to the WebhookOperators it ran: the
// new leader does (docs/operations.md). The Ready there is still the one
// the old leader wrote, which a new leader whose operator runs the same
// keeps as it is, so the stop's pinned write would land on it: it must not
// be written. Once stopped, the old leader acts no more: the new leader's
// own Ready stays, and a new object is not handled.
func TestLeaderElectionALeaderThatLostTheLeaseWritesNoGatewayStopped(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	// Its own name each run: no gateway runs at the end to release the
	// finalizer of the one deleted then.
	name := fmt.Sprintf("lostleasestopped-%d", time.Now().UnixNano()%1000000)
	e := runner.Election{Namespace: ns, Name: "opgate-test", Identity: "old-leader",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
	a := startReplica(t, e) // no files: it runs the WebhookOperator objects
	eventually(t, 20*time.Second, func() error {
		if !a.leading(t) {
			return fmt.Errorf("the replica does not lead yet")
		}
		return nil
	})
	created := createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  callbacks:
    - {id: create, events: [create]}
`, name, ns, h.URL))
	waitReady(t, name, "True/Running")
	ready := readyWatch(t, name, created.GetResourceVersion())

	takeLease(t, ns, e.Name, "new-leader")
	eventually(t, 30*time.Second, func() error {
		if !a.ended() {
			return fmt.Errorf("the old leader still runs")
		}
		return nil
	})
	if !errors.Is(a.err, runner.ErrLeadershipLost) {
		t.Errorf("the old leader returned %v, want ErrLeadershipLost", a.err)
	}
	if c := readyCondition(t, name); !strings.HasPrefix(c, "True/Running") {
		t.Errorf("Ready once the old leader stopped = %s, want the True/Running it left for the new leader", c)
	}

	// The new leader says its own; the old one neither puts its Ready
	// back nor handles a new object.
	setReadyMessage(t, name, "run by the new leader")
	w := createWidget(t, ns, "after", 1)
	n := modifiedWithin(t, "Widget", 3*time.Second, func(ctx context.Context) (watch.Interface, error) {
		return dyn(t).Resource(widgets).Namespace(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=after", ResourceVersion: w.GetResourceVersion()})
	})
	if n != 0 || len(h.calls("create")) != 0 {
		t.Errorf("after the old leader stopped: %d writes to a new object and %d calls, want none", n, len(h.calls("create")))
	}
	if c := readyCondition(t, name); c != "True/Running: run by the new leader" {
		t.Errorf("Ready = %s, want the new leader's", c)
	}
	if seen := ready.upToNow(t); slices.ContainsFunc(seen, func(c string) bool { return strings.Contains(c, spec.ReasonGatewayStopped) }) {
		t.Errorf("a leader that lost its Lease wrote GatewayStopped; Ready in order: %q", seen)
	}
}

// takeLease makes identity the holder of the Lease, for a minute, as a
// replica that acquired it writes it.
func takeLease(t *testing.T, ns, name, identity string) {
	t.Helper()
	leases := kube(t).CoordinationV1().Leases(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		minute := int32(60)
		transitions := int32(1)
		if l.Spec.LeaseTransitions != nil {
			transitions += *l.Spec.LeaseTransitions
		}
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.LeaseTransitions = &identity, &minute, &transitions
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
		_, err = leases.Update(context.Background(), l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("take the Lease %s/%s: %v", ns, name, err)
	}
}

// setReadyMessage writes the WebhookOperator's Ready with message, as
// another gateway writes its own.
func setReadyMessage(t *testing.T, name, message string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		o, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		for _, c := range conds {
			if m := c.(map[string]any); m["type"] == spec.ConditionReady {
				m["message"] = message
			}
		}
		if err := unstructured.SetNestedSlice(o.Object, conds, "status", "conditions"); err != nil {
			return err
		}
		_, err = dyn(t).Resource(engine.OperatorResource).UpdateStatus(context.Background(), o, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("write Ready of WebhookOperator %s: %v", name, err)
	}
}

// readyHistory is every Ready a WebhookOperator had, in order, as a watch
// saw it ("status/reason: message").
type readyHistory struct {
	name string
	mu   sync.Mutex
	seen []string
	rvs  map[string]bool
}

// readyWatch records the Ready conditions of a WebhookOperator from
// resourceVersion on.
func readyWatch(t *testing.T, name, resourceVersion string) *readyHistory {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := dyn(t).Resource(engine.OperatorResource).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: resourceVersion})
	if err != nil {
		t.Fatalf("watch WebhookOperator %s: %v", name, err)
	}
	h := &readyHistory{name: name, rvs: map[string]bool{}}
	go func() {
		for ev := range w.ResultChan() {
			o, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
			ready := "no Ready condition"
			for _, c := range conds {
				if m, _ := c.(map[string]any); m["type"] == spec.ConditionReady {
					ready = fmt.Sprintf("%v/%v: %v", m["status"], m["reason"], m["message"])
				}
			}
			h.mu.Lock()
			h.rvs[o.GetResourceVersion()] = true
			if n := len(h.seen); n == 0 || h.seen[n-1] != ready {
				h.seen = append(h.seen, ready)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

// upToNow is the Ready conditions up to the object as it is now: it waits
// for the watch to have seen its current resourceVersion.
func (h *readyHistory) upToNow(t *testing.T) []string {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		o, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), h.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.rvs[o.GetResourceVersion()] {
			return fmt.Errorf("the watch has not seen resourceVersion %s yet", o.GetResourceVersion())
		}
		return nil
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

// The base rules' Lease verbs are all leader election uses: a replica
// granted nothing more takes the Lease (get, create), renews it (update),
// runs its operator, and on a clean stop frees the Lease for a standby
// (get, update).
func TestLeaderElectionNeedsNoMoreThanTheBaseRules(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	op := operatorFor(t, "baselease", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	rules, err := rbac.For([]*spec.WebhookOperator{op}, discoveryResolver(t), false)
	if err != nil {
		t.Fatal(err)
	}
	base := rbac.BaseRules()
	c, _ := impersonatedConfig(t, "opgate-base-lease", slices.Concat(base.Cluster, base.Namespace, base.Secrets, rules.Cluster), 0)
	e := runner.Election{Namespace: ns, Name: "opgate-test",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
	a := startReplicaOn(t, c, e, op)
	eventually(t, 20*time.Second, func() error {
		if !a.leading(t) {
			return fmt.Errorf("the replica does not lead")
		}
		return nil
	})
	leases := kube(t).CoordinationV1().Leases(ns)
	first, err := leases.Get(context.Background(), e.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		l, err := leases.Get(context.Background(), e.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.ResourceVersion == first.ResourceVersion {
			return fmt.Errorf("the Lease was not renewed since resourceVersion %s", first.ResourceVersion)
		}
		return nil
	})
	createWidget(t, ns, "first", 1)
	eventually(t, 20*time.Second, func() error { return called(h, "create", 1) })

	a.stop()
	if a.err != nil {
		t.Errorf("RunElected = %v, want a clean stop", a.err)
	}
	after, err := leases.Get(context.Background(), e.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := after.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("the Lease still names %s after a clean stop: not freed", *h)
	}
}
