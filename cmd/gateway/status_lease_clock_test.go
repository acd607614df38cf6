package main

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/opgate/opgate/internal/poll"
)

// renewLease renews the Lease ns/name as its holder does, every 200ms,
// writing renewTime by a clock skew off: the renewTime of a leader whose
// clock differs from the caller's. It stops with the test.
func renewLease(t *testing.T, cfg *rest.Config, ns, name string, skew time.Duration) {
	t.Helper()
	leases := kubernetes.NewForConfigOrDie(cfg).CoordinationV1().Leases(ns)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				l, err := leases.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				rt := metav1.NewMicroTime(time.Now().Add(skew))
				l.Spec.RenewTime = &rt
				_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
				return err
			})
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// Whether the writer of a Ready still holds its Lease does not depend on
// the caller's clock, nor on the leader's: a leader whose renewTime reads
// a minute behind the caller's clock (its clock lags, or the caller's
// leads) but which renews its Lease is live; one whose renewTime reads a
// minute ahead is stale once it stops renewing for its lease duration, as
// the API server's clock tells.
func TestStatusJudgesTheLeaseWhateverTheCallersAndTheLeadersClocksSay(t *testing.T) {
	cfg := startAPIServer(t)
	registerReady(t, cfg, memcachedFile)
	kc := writeKubeconfig(t, cfg, "", "")
	const ns, writer, duration = "default", "gateway-a", 2 // seconds
	tests := []struct {
		name   string
		skew   time.Duration // of the leader's renewTime against the caller's clock
		renews bool
		want   string // stale when renews is false
	}{
		{"the leader lags the caller by a minute and renews", -time.Minute, true,
			"Ready written by gateway-a under Lease default/"},
		{"the leader leads the caller by a minute and renews", time.Minute, true,
			"Ready written by gateway-a under Lease default/"},
		{"the leader leads the caller by a minute and stopped", time.Minute, false,
			"(lease duration 2s)"},
		{"the leader lags the caller by a minute and stopped", -time.Minute, false,
			"(lease duration 2s)"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lease := "skewed-" + string(rune('a'+i))
			putLease(t, cfg, ns, lease, writer, time.Now().Add(tt.skew), duration)
			if tt.renews {
				renewLease(t, cfg, ns, lease, tt.skew)
			}
			setWriter(t, cfg, "memcached", elected(ns, writer)(lease))

			// A stopped leader's Ready turns stale once its lease duration
			// ran out; a renewing one's never does, which reads spanning
			// more than that duration show.
			var out string
			start := time.Now()
			poll.Eventually(t, 15*time.Second, "status memcached to settle", func(context.Context) (bool, string, error) {
				var err error
				if out, _, err = execute(t, "status", "memcached", "--kubeconfig", kc); err != nil {
					return false, out, err
				}
				stale := strings.Contains(out, "stale")
				if !tt.renews {
					return stale, out, nil
				}
				if stale {
					t.Fatalf("the leader renews its Lease, yet status shows its Ready stale:\n%s", out)
				}
				return time.Since(start) > 2*duration*time.Second, out, nil
			})
			if !strings.Contains(out, tt.want) {
				t.Errorf("status memcached lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

// A Lease held by the writer whose last renewal the API server's answer
// does not date (no Date header, no managedFields entry owning renewTime)
// leaves the Ready unchecked: neither stale nor judged by another clock.
func TestStatusLeavesTheReadyUncheckedWhenTheAPIServerDoesNotDateTheRenewal(t *testing.T) {
	const writer = "gateway-a"
	now := time.Now()
	holder, duration, renew := writer, int32(15), metav1.NewMicroTime(now.Add(-time.Hour))
	owned := metav1.ManagedFieldsEntry{Manager: "gateway", Operation: metav1.ManagedFieldsOperationUpdate,
		Time: &metav1.Time{Time: now}, FieldsType: "FieldsV1",
		FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:holderIdentity":{},"f:renewTime":{}}}`)}
	notRenewTime := owned
	notRenewTime.FieldsV1 = metav1.NewFieldsV1(`{"f:metadata":{"f:labels":{}}}`)
	tests := []struct {
		name      string
		managed   []metav1.ManagedFieldsEntry
		serverNow time.Time
	}{
		{"no Date header", []metav1.ManagedFieldsEntry{owned}, time.Time{}},
		{"no managedFields", nil, now},
		{"no managedFields entry owning renewTime", []metav1.ManagedFieldsEntry{notRenewTime}, now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{ManagedFields: tt.managed},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration, RenewTime: &renew}}
			w := &writerCheck{Identity: writer, Lease: "default/opgate-gateway"}
			judgeLease(w, lease, tt.serverNow)
			if want := "cannot tell whether it still renews it"; w.Stale || !strings.Contains(w.Why, want) {
				t.Errorf("stale %v, why %q; want not stale and %q", w.Stale, w.Why, want)
			}
		})
	}
}
