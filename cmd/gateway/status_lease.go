package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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
	// Holder is the Lease's now, as read; Renewed is when the API server
	// recorded its last renewal, by the API server's clock.
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
	// serverNow is the API server's clock when it answered (its Date
	// header); zero when the answer had none.
	serverNow time.Time
	err       error
}

// checkWriter judges the Ready of r by the Lease its writer named. Only a
// Ready=True is judged: a False one claims nothing that could be stale.
func (c *cluster) checkWriter(ctx context.Context, r registered) *writerCheck {
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
	judgeLease(w, got.lease, got.serverNow)
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
		dated, serverNow := withServerDate(ctx)
		got.lease, got.err = c.kube.CoordinationV1().Leases(ns).Get(dated, name, metav1.GetOptions{})
		got.serverNow = *serverNow
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
// within its duration. Renewed is judged by the API server's clock alone,
// serverNow against when it recorded the last renewal: renewTime is the
// holder's clock and the caller's may differ from both by minutes.
func judgeLease(w *writerCheck, lease *coordinationv1.Lease, serverNow time.Time) {
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
	renewed, known := renewedAt(lease)
	if known {
		w.Renewed = &renewed
	}
	known = known && !serverNow.IsZero()
	since := max(serverNow.Sub(renewed), 0).Round(time.Second)
	var ago string // " 4s ago", or "" when the API server's clock does not say
	if known {
		ago = fmt.Sprintf(" %s ago", since)
	}
	var duration time.Duration
	if d := lease.Spec.LeaseDurationSeconds; d != nil {
		duration = time.Duration(*d) * time.Second
	}
	switch {
	case w.Holder == "":
		stale(fmt.Sprintf("released%s: no gateway holds it", ago))
	case w.Holder != w.Identity && known:
		stale(fmt.Sprintf("now held by %s (renewed%s)", w.Holder, ago))
	case w.Holder != w.Identity:
		stale(fmt.Sprintf("now held by %s", w.Holder))
	case lease.Spec.RenewTime == nil:
		stale("never renewed")
	case !known:
		w.Why = fmt.Sprintf("Ready written by %s under Lease %s; cannot tell whether it still renews it: the API server's answer does not date its last renewal", w.Identity, w.Lease)
	case since > duration:
		stale(fmt.Sprintf("not renewed for %s (lease duration %s)", since, duration))
	default:
		w.Why = fmt.Sprintf("Ready written by %s under Lease %s, renewed%s", w.Identity, w.Lease, ago)
	}
}

// renewedAt is when the API server recorded the last write of the Lease's
// renewTime: the time of the managedFields entry that owns it, which the
// API server sets by its own clock whenever that manager changes a value
// it owns (each renewal does).
func renewedAt(lease *coordinationv1.Lease) (time.Time, bool) {
	var last time.Time
	for _, mf := range lease.ManagedFields {
		if mf.Time == nil || mf.FieldsV1 == nil || !ownsRenewTime(mf.FieldsV1.GetRawBytes()) {
			continue
		}
		if mf.Time.After(last) {
			last = mf.Time.Time
		}
	}
	return last, !last.IsZero()
}

// ownsRenewTime reports whether a managedFields entry's fields include
// spec.renewTime.
func ownsRenewTime(fieldsV1 []byte) bool {
	var fields struct {
		Spec map[string]json.RawMessage `json:"f:spec"`
	}
	if json.Unmarshal(fieldsV1, &fields) != nil {
		return false
	}
	_, ok := fields.Spec["f:renewTime"]
	return ok
}

// serverDateKey carries, in a request's context, where serverDate records
// the API server's Date header of the answer.
type serverDateKey struct{}

// withServerDate returns a context whose requests record in *at the API
// server's clock as it answered them (left zero without a Date header).
func withServerDate(ctx context.Context) (context.Context, *time.Time) {
	at := new(time.Time)
	return context.WithValue(ctx, serverDateKey{}, at), at
}

// serverDate is the transport that records the Date header of the answers
// to requests made with withServerDate's context: the client-go clients
// do not expose response headers.
type serverDate struct{ next http.RoundTripper }

func (s serverDate) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if at, ok := req.Context().Value(serverDateKey{}).(*time.Time); ok && resp != nil {
		if d, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
			*at = d
		}
	}
	return resp, err
}

// gatewayOf is the writer status.gateway names; nil when it names none.
func gatewayOf(st spec.OperatorStatus) *spec.GatewayRef {
	if st.Gateway == nil || st.Gateway.Identity == "" {
		return nil
	}
	return st.Gateway
}
