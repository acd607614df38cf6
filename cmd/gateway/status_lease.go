package main

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/spec"
)

// writerCheck says whether the gateway that wrote an operator's Ready
// still stands behind it. A gateway that crashed writes nothing, so its
// last Ready=True stays; the leader election Lease it acted under says
// whether it still runs (docs/operations.md, "Status conditions").
type writerCheck struct {
	Identity string `json:"identity,omitempty"`
	Lease    string `json:"lease,omitempty"`
	// Holder and Renewed are the Lease's now, as read.
	Holder  string     `json:"holder,omitempty"`
	Renewed *time.Time `json:"renewed,omitempty"`
	// Stale: Ready says True but its writer no longer holds the Lease.
	Stale bool `json:"stale"`
	// Why is what status prints about it; empty when Ready is not True.
	Why string `json:"why,omitempty"`
}

// leaseRead is one Lease as read, for every operator naming it.
type leaseRead struct {
	lease *coordinationv1.Lease // nil when it does not exist
	err   error
}

// checkWriter judges the Ready of r by the Lease its writer named. Only a
// Ready=True is judged: a False one claims nothing that could be stale.
func (c *cluster) checkWriter(ctx context.Context, r registered, now time.Time) *writerCheck {
	ref := r.gateway
	if ref == nil {
		if !r.ready.Ready {
			return nil
		}
		return &writerCheck{Why: "the gateway that wrote Ready does not name itself (it predates status.gateway): whether it still runs cannot be told"}
	}
	w := &writerCheck{Identity: ref.Identity, Lease: ref.Lease}
	switch {
	case !r.ready.Ready:
		return w
	case ref.Lease == "":
		w.Why = fmt.Sprintf("Ready written by %s without leader election: no Lease says whether it still runs", ref.Identity)
		return w
	}
	got := c.readLease(ctx, ref.Lease)
	if got.err != nil {
		w.Why = fmt.Sprintf("Ready written by %s; cannot check it: %v", ref.Identity, got.err)
		return w
	}
	judgeLease(w, got.lease, now)
	return w
}

// readLease reads the Lease "namespace/name" once per status command.
func (c *cluster) readLease(ctx context.Context, key string) leaseRead {
	if got, ok := c.leases[key]; ok {
		return got
	}
	var got leaseRead
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	switch {
	case err != nil || ns == "" || name == "":
		got.err = fmt.Errorf("status.gateway.lease %q: want namespace/name", key)
	default:
		got.lease, got.err = c.kube.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(got.err) {
			got.lease, got.err = nil, nil
		} else if got.err != nil {
			got.lease, got.err = nil, explain(got.err, "get Lease "+key)
		}
	}
	if c.leases == nil {
		c.leases = map[string]leaseRead{}
	}
	c.leases[key] = got
	return got
}

// judgeLease says whether w's writer still holds lease (nil: gone), as
// client-go's leader election judges it: held by its identity, renewed
// within its duration.
func judgeLease(w *writerCheck, lease *coordinationv1.Lease, now time.Time) {
	stale := func(why string) {
		w.Stale = true
		w.Why = fmt.Sprintf("Ready is stale: %s wrote it under Lease %s, %s", w.Identity, w.Lease, why)
	}
	if lease == nil {
		stale("which does not exist")
		return
	}
	if h := lease.Spec.HolderIdentity; h != nil {
		w.Holder = *h
	}
	var since time.Duration
	if rt := lease.Spec.RenewTime; rt != nil {
		renewed := rt.Time
		w.Renewed = &renewed
		since = max(now.Sub(renewed), 0).Round(time.Second)
	}
	var duration time.Duration
	if d := lease.Spec.LeaseDurationSeconds; d != nil {
		duration = time.Duration(*d) * time.Second
	}
	switch {
	case w.Holder == "":
		stale(fmt.Sprintf("released %s ago: no gateway holds it", since))
	case w.Holder != w.Identity:
		stale(fmt.Sprintf("now held by %s (renewed %s ago)", w.Holder, since))
	case w.Renewed == nil:
		stale("never renewed")
	case now.Sub(*w.Renewed) > duration:
		stale(fmt.Sprintf("not renewed for %s (lease duration %s)", since, duration))
	default:
		w.Why = fmt.Sprintf("Ready written by %s under Lease %s, renewed %s ago", w.Identity, w.Lease, since)
	}
}

// gatewayOf is the writer status.gateway names; nil when it names none.
func gatewayOf(st spec.OperatorStatus) *spec.GatewayRef {
	if st.Gateway == nil || st.Gateway.Identity == "" {
		return nil
	}
	return st.Gateway
}
