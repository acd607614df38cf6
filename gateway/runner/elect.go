package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	typedcoordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ErrLeadershipLost ends an elected run whose Lease was lost before its
// context was done: the process should exit and come back as a standby
// rather than act without the Lease.
// It is also the cause of the operators' context then: a replica that lost
// the Lease leaves the WebhookOperators' status to the new leader.
var ErrLeadershipLost = engine.ErrLeadershipLost

// Election configures leader election (docs/operations.md, "Leader election").
type Election struct {
	Namespace string // of the Lease; DefaultLeaseNamespace() when empty
	Name      string // of the Lease; "opgate-gateway" when empty
	Identity  string // of this replica; NewIdentity() when empty

	// LeaseDuration, RenewDeadline and RetryPeriod default to 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// defaultRenewDeadline is also how long releasing the Lease may take.
const defaultRenewDeadline = 10 * time.Second

// MaxShutdown bounds the waits of an elected gateway's shutdown until it
// released the Lease: the operators stopping (engine.MaxStopTime), then the
// release (the renew deadline). A pod needs a longer grace period: killed
// before, it leaves the Lease to run out (15 s without a leader).
const MaxShutdown = engine.MaxStopTime + defaultRenewDeadline

func (e *Election) defaults() error {
	if e.Namespace == "" {
		e.Namespace = DefaultLeaseNamespace()
	}
	if e.Name == "" {
		e.Name = "opgate-gateway"
	}
	if e.Identity == "" {
		id, err := NewIdentity()
		if err != nil {
			return err
		}
		e.Identity = id
	}
	if e.LeaseDuration <= 0 {
		e.LeaseDuration = 15 * time.Second
	}
	if e.RenewDeadline <= 0 {
		e.RenewDeadline = defaultRenewDeadline
	}
	if e.RetryPeriod <= 0 {
		e.RetryPeriod = 2 * time.Second
	}
	return nil
}

// NewIdentity is the hostname plus a random suffix, as controller-runtime
// does: two replicas on one host, or two pods with a fixed hostname, must
// not both believe they hold the Lease.
func NewIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader election identity: %w", err)
	}
	return host + "_" + string(uuid.NewUUID()), nil
}

// DefaultLeaseNamespace is the pod's own namespace ($POD_NAMESPACE, else
// the service account's namespace file), else "default" outside a cluster.
func DefaultLeaseNamespace() string { return leaseNamespace(os.Getenv, serviceAccountNamespace) }

func leaseNamespace(getenv func(string) string, saFile string) string {
	if ns := strings.TrimSpace(getenv("POD_NAMESPACE")); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(saFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}

// RunElected runs the gateway only while it holds the Lease, until ctx is
// done. While it waits, the replica is ready as long as another replica
// renews the Lease (a healthy standby, so that a rolling update can finish)
// and opgate_leader{identity} is 0; while it leads, 1. Losing the Lease stops the operators and returns
// ErrLeadershipLost, leaving the Lease alone. When ctx is done the operators
// stop first, and then the Lease is released if it still names this replica.
func (g *Gateway) RunElected(ctx context.Context, e Election) error {
	if err := e.defaults(); err != nil {
		return err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, e.Namespace, e.Name,
		g.deps.Kube.CoreV1(), g.deps.Kube.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: e.Identity})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	watch := newLeaseWatch(e, time.Now)
	lock = watchedLock{Interface: lock, w: watch}
	log := g.opts.Logger.With("identity", e.Identity, "lease", e.Namespace+"/"+e.Name)
	leading := g.deps.Metrics.Leader.WithLabelValues(e.Identity)
	leading.Set(0)
	g.standby.Store(watch)
	defer g.standby.Store(nil)

	// The election outlives ctx while the operators run, so that the Lease
	// is released only once nothing acts under it any more.
	electCtx, stopElection := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElection()
	run := &electedRun{done: make(chan error, 1)}
	stopWaiting := context.AfterFunc(ctx, func() {
		if run.giveUp() {
			stopElection()
		}
	})
	defer stopWaiting()
	// Not ReleaseOnCancel: client-go releases as soon as renewing stops,
	// before the operators are told to stop, and judges whether it holds
	// the Lease by the record it saw last: after failed renewals that is its
	// own, though another replica may hold the Lease by then, and it would
	// free that replica's Lease for a third. releaseLease runs instead, once
	// the operators stopped, on a clean shutdown only.
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, Name: e.Name,
		LeaseDuration: e.LeaseDuration, RenewDeadline: e.RenewDeadline, RetryPeriod: e.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leaderCtx context.Context) {
				if !run.start() {
					return
				}
				defer stopElection()
				log.Info("leading: running the operators")
				leading.Set(1)
				// Whichever ends first names the cause: a shutdown (ctx) or
				// the Lease lost (leaderCtx). See engine.Registry.Run.
				runCtx, cancel := context.WithCancelCause(context.WithoutCancel(leaderCtx))
				defer cancel(nil)
				defer context.AfterFunc(leaderCtx, func() { cancel(ErrLeadershipLost) })()
				defer context.AfterFunc(ctx, func() { cancel(nil) })()
				run.done <- g.run(runCtx, spec.GatewayRef{Identity: e.Identity, Lease: e.Namespace + "/" + e.Name})
			},
			OnStoppedLeading: func() {
				leading.Set(0)
				log.Info("leadership lost or released")
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	log.Info("waiting for leadership")
	le.Run(electCtx) // returns once leadership is lost, or ctx is done and the operators stopped
	var runErr error
	if !run.giveUp() {
		runErr = <-run.done // the operators stopped
	}
	leading.Set(0)
	if ctx.Err() == nil {
		return errors.Join(ErrLeadershipLost, runErr)
	}
	// IsLeader (the record last seen names this replica) only spares a
	// standby the request; releaseLease itself reads the Lease afresh.
	if le.IsLeader() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.RenewDeadline)
		defer cancel()
		if err := releaseLease(rctx, g.deps.Kube.CoordinationV1().Leases(e.Namespace), e.Name, e.Identity); err != nil {
			log.Warn("cannot release the Lease; a standby takes over once it runs out", "error", err)
		}
	}
	return runErr
}

// releaseLease frees the Lease if it names identity, so that a standby
// takes over at once. The update carries the resourceVersion of the read
// that named identity: should another replica write the Lease in between,
// it is refused, and the Lease read again.
func releaseLease(ctx context.Context, leases typedcoordinationv1.LeaseInterface, name, identity string) error {
	for {
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != identity {
			return nil
		}
		// Written as client-go writes a released Lease.
		now := metav1.NewMicroTime(time.Now())
		one := int32(1)
		l.Spec.HolderIdentity = nil
		l.Spec.LeaseDurationSeconds = &one
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}

// electedRun hands the result of the run under leadership from the
// elector's callback goroutine to RunElected. The elector starts that
// goroutine without waiting for it, possibly only after its Run returned.
type electedRun struct {
	mu      sync.Mutex
	started bool
	closed  bool // RunElected stopped waiting: a late callback must not run
	done    chan error
}

// start reports whether the callback may run the gateway.
func (r *electedRun) start() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.started = true
	return true
}

// giveUp forbids a later start and reports whether the gateway never
// started; when it did, its result is (or will be) on done.
func (r *electedRun) giveUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return !r.started
}
