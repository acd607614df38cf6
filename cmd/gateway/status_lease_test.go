package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/internal/poll"
)

// putLease writes the Lease ns/name as a gateway holding it would (holder
// "" as a released one), whatever wrote it before.
func putLease(t *testing.T, cfg *rest.Config, ns, name, holder string, renewed time.Time, duration int32) {
	t.Helper()
	leases := kubernetes.NewForConfigOrDie(cfg).CoordinationV1().Leases(ns)
	renew := metav1.NewMicroTime(renewed)
	spec := coordinationv1.LeaseSpec{LeaseDurationSeconds: &duration, AcquireTime: &renew, RenewTime: &renew}
	if holder != "" {
		spec.HolderIdentity = &holder
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = leases.Create(context.Background(), &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		l.Spec = spec
		_, err = leases.Update(context.Background(), l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("write Lease %s/%s: %v", ns, name, err)
	}
}

// setWriter writes status.gateway of WebhookOperator name as a gateway
// writes it with its Ready; nil removes it.
func setWriter(t *testing.T, cfg *rest.Config, name string, gateway map[string]any) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"gateway": gateway}}) // nil: null
	if err != nil {
		t.Fatal(err)
	}
	res := dynamic.NewForConfigOrDie(cfg).Resource(engine.OperatorResource)
	got, err := res.Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatalf("write status.gateway of WebhookOperator %s: %v", name, err)
	}
	if gateway != nil {
		if _, found, _ := unstructured.NestedMap(got.Object, "status", "gateway"); !found {
			t.Fatalf("the API server dropped status.gateway of WebhookOperator %s (not in the CRD's schema?)", name)
		}
	}
}

// A Ready=True that the gateway which wrote it no longer stands behind is
// shown as stale: the Lease it acts under is held by another replica, was
// not renewed within its duration, was released, or is gone. A Lease that
// its writer renews leaves Ready alone. Stale is not an error: status exits
// 0, as for any Ready it reports.
func TestStatusShowsAReadyStaleWhenTheLeaseOfTheGatewayThatWroteItSaysItIsGone(t *testing.T) {
	cfg := startAPIServer(t)
	registerReady(t, cfg, memcachedFile)
	kc := writeKubeconfig(t, cfg, "", "")
	const ns, writer = "default", "gateway-a"
	tests := []struct {
		name    string
		lease   func(name string) // writes the Lease called name
		gateway func(lease string) map[string]any
		stale   bool
		want    []string // in `gateway status memcached`
	}{
		{"renewed by its writer",
			func(l string) { putLease(t, cfg, ns, l, writer, time.Now(), 15) }, elected(ns, writer),
			false, []string{"Ready True,", "Ready written by gateway-a under Lease default/renewed-by-its-writer, renewed "}},
		{"not renewed within its duration",
			func(l string) { putLease(t, cfg, ns, l, writer, time.Now(), 1) }, elected(ns, writer),
			true, []string{"Ready is stale: gateway-a wrote it under Lease default/not-renewed-within-its-duration", "not renewed for ", "lease duration 1s"}},
		{"held by another",
			func(l string) { putLease(t, cfg, ns, l, "gateway-b", time.Now(), 15) }, elected(ns, writer),
			true, []string{"Ready is stale: gateway-a wrote it under Lease default/held-by-another", "now held by gateway-b", "renewed "}},
		{"released",
			func(l string) { putLease(t, cfg, ns, l, "", time.Now().Add(-time.Minute), 1) }, elected(ns, writer),
			true, []string{"Ready is stale: gateway-a wrote it under Lease default/released", "released ", " ago: no gateway holds it"}},
		{"gone",
			func(string) {}, elected(ns, writer),
			true, []string{"Ready is stale: gateway-a wrote it under Lease default/gone", "which does not exist"}},
		{"no leader election",
			func(string) {}, func(string) map[string]any { return map[string]any{"identity": writer, "lease": nil} },
			false, []string{"Ready True,", "Ready written by gateway-a without leader election: no Lease says whether it still runs"}},
		{"written by a gateway that does not name itself",
			func(string) {}, func(string) map[string]any { return nil },
			false, []string{"Ready True,", "the gateway that wrote Ready does not name itself"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lease := strings.ReplaceAll(tt.name, " ", "-")
			tt.lease(lease)
			setWriter(t, cfg, "memcached", tt.gateway(lease))

			// A Lease not renewed says so once its duration ran out, by the
			// API server's clock.
			var one string
			poll.Eventually(t, 10*time.Second, "status memcached", func(context.Context) (bool, string, error) {
				var err error
				one, _, err = execute(t, "status", "memcached", "--kubeconfig", kc)
				return err == nil && strings.Contains(one, "stale") == tt.stale, one, err
			})
			for _, want := range tt.want {
				if !strings.Contains(one, want) {
					t.Errorf("status memcached lacks %q:\n%s", want, one)
				}
			}
			if got := strings.Contains(one, "stale"); got != tt.stale {
				t.Errorf("status memcached says stale: %v, want %v:\n%s", got, tt.stale, one)
			}

			all, _, err := execute(t, "status", "--kubeconfig", kc)
			if err != nil {
				t.Fatalf("status: %v\n%s", err, all)
			}
			if got := strings.Contains(all, "True (stale)"); got != tt.stale {
				t.Errorf("status READY column says True (stale): %v, want %v:\n%s", got, tt.stale, all)
			}
			if tt.stale && !strings.Contains(all, "memcached: "+tt.want[0]) {
				t.Errorf("status does not say why below its table (want %q):\n%s", "memcached: "+tt.want[0], all)
			}

			js, _, err := execute(t, "status", "memcached", "--kubeconfig", kc, "-o", "json")
			if err != nil {
				t.Fatalf("status -o json: %v\n%s", err, js)
			}
			var got struct {
				Ready   struct{ Ready bool }
				Gateway struct {
					Stale bool   `json:"stale"`
					Why   string `json:"why"`
				}
			}
			if err := json.Unmarshal([]byte(js), &got); err != nil {
				t.Fatalf("%v:\n%s", err, js)
			}
			if !got.Ready.Ready || got.Gateway.Stale != tt.stale {
				t.Errorf("-o json: ready %v, gateway.stale %v; want ready true, stale %v:\n%s", got.Ready.Ready, got.Gateway.Stale, tt.stale, js)
			}
		})
	}
}

// A user who may not read the Lease sees the Ready unchecked, with the
// API server's refusal, neither stale nor an error.
func TestStatusShowsAReadyUncheckedWhenTheLeaseCannotBeRead(t *testing.T) {
	cfg := startAPIServer(t)
	registerReady(t, cfg, memcachedFile)
	putLease(t, cfg, "default", "opgate-gateway", "gateway-a", time.Now().Add(-time.Hour), 15)
	setWriter(t, cfg, "memcached", elected("default", "gateway-a")("opgate-gateway"))
	const user = "no-leases"
	grant(t, cfg, user,
		rbacv1.PolicyRule{APIGroups: []string{"opgate.dev"}, Resources: []string{"webhookoperators"}, Verbs: []string{"get", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{"cache.example.com"}, Resources: []string{"memcacheds"}, Verbs: []string{"list"}})
	out, _, err := execute(t, "status", "memcached", "--kubeconfig", writeKubeconfig(t, cfg, user, ""))
	if err != nil {
		t.Fatalf("status memcached: %v\n%s", err, out)
	}
	want := `Ready written by gateway-a; cannot check it: get Lease default/opgate-gateway: forbidden`
	if !strings.Contains(out, want) || strings.Contains(out, "stale") {
		t.Errorf("status memcached: want %q and no stale:\n%s", want, out)
	}
}

// elected is status.gateway as a gateway with leader election writes it.
func elected(ns, identity string) func(lease string) map[string]any {
	return func(lease string) map[string]any {
		return map[string]any{"identity": identity, "lease": ns + "/" + lease}
	}
}

// A gateway running with leader election names itself and its Lease with
// the Ready it writes. While it holds the Lease, status shows Ready as it
// is; once another identity holds the Lease (a replica that took over from
// one that lost it, or crashed), the Ready it left is stale, though it
// still says True.
func TestAnElectedGatewayNamesItselfAndItsLeaseWithItsReady(t *testing.T) {
	cfg := startAPIServer(t)
	kc := writeKubeconfig(t, cfg, "", "")
	const ns, leaseName, identity = "default", "opgate-test", "gateway-a"
	ended, stop := runElected(t, cfg, ns, leaseName, identity)
	createOperator(t, cfg, "memcached", nil) // its Ready=True not yet the gateway's

	res := dynamic.NewForConfigOrDie(cfg).Resource(engine.OperatorResource)
	poll.Eventually(t, 30*time.Second, "Ready=True with status.gateway naming the gateway and its Lease", func(ctx context.Context) (bool, string, error) {
		o, err := res.Get(ctx, "memcached", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		status, _, _ := unstructured.NestedMap(o.Object, "status")
		b, _ := json.Marshal(status)
		gateway, _, _ := unstructured.NestedStringMap(o.Object, "status", "gateway")
		want := map[string]string{"identity": identity, "lease": ns + "/" + leaseName}
		return readyTrue(o) && fmt.Sprint(gateway) == fmt.Sprint(want), string(b), nil
	})
	out, _, err := execute(t, "status", "memcached", "--kubeconfig", kc)
	if err != nil {
		t.Fatalf("status memcached: %v\n%s", err, out)
	}
	if want := "Ready written by gateway-a under Lease default/opgate-test, renewed "; !strings.Contains(out, want) || strings.Contains(out, "stale") {
		t.Errorf("status memcached, the gateway leading: want %q and no stale:\n%s", want, out)
	}

	// Another replica takes the Lease: this one stops acting and writes
	// nothing more, as one that lost it does.
	putLease(t, cfg, ns, leaseName, "gateway-b", time.Now(), 60)
	select {
	case <-ended:
		if err := stop(); !errors.Is(err, runner.ErrLeadershipLost) {
			t.Fatalf("RunElected = %v, want the Lease lost", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not notice that another replica holds its Lease")
	}
	out, _, err = execute(t, "status", "memcached", "--kubeconfig", kc)
	if err != nil {
		t.Fatalf("status memcached: %v\n%s", err, out)
	}
	for _, want := range []string{"Ready True (stale)", "Ready is stale: gateway-a wrote it under Lease default/opgate-test, now held by gateway-b"} {
		if !strings.Contains(out, want) {
			t.Errorf("status memcached, the Lease taken: lacks %q:\n%s", want, out)
		}
	}

	// A gateway without leader election writes Ready next: its name
	// replaces the elected one's, Lease included.
	plain, err := runner.New(cfg, runner.Options{Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	plainCtx, stopPlain := context.WithCancel(context.Background())
	plainDone := make(chan error, 1)
	go func() { plainDone <- plain.Run(plainCtx) }()
	defer func() {
		stopPlain()
		<-plainDone
	}()
	poll.Eventually(t, 30*time.Second, "Ready=True with status.gateway naming the gateway without leader election, no Lease", func(ctx context.Context) (bool, string, error) {
		o, err := res.Get(ctx, "memcached", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		gateway, _, _ := unstructured.NestedMap(o.Object, "status", "gateway")
		id, _ := gateway["identity"].(string)
		_, hasLease := gateway["lease"]
		return readyTrue(o) && id != "" && id != identity && !hasLease, fmt.Sprint(gateway), nil
	})
	out, _, err = execute(t, "status", "memcached", "--kubeconfig", kc)
	if err != nil {
		t.Fatalf("status memcached: %v\n%s", err, out)
	}
	if want := "without leader election: no Lease says whether it still runs"; !strings.Contains(out, want) || strings.Contains(out, "stale") {
		t.Errorf("status memcached, written without leader election: want %q and no stale:\n%s", want, out)
	}
}

func readyTrue(o *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			return m["status"] == "True"
		}
	}
	return false
}

// A gateway that stops cleanly takes its name off the status with its
// Ready=False/GatewayStopped: a gateway that predates status.gateway (a
// rollback) writes its Ready without a name, and status must not judge
// that Ready by the Lease of the gateway that stopped, which a live leader
// of the old version now holds.
func TestAStoppedGatewayTakesItsNameOffSoAnOlderGatewaysReadyIsNotStale(t *testing.T) {
	cfg := startAPIServer(t)
	kc := writeKubeconfig(t, cfg, "", "")
	const ns, leaseName, identity = "default", "opgate-gateway", "gateway-new"
	_, stop := runElected(t, cfg, ns, leaseName, identity)
	createOperator(t, cfg, "memcached", nil)
	res := dynamic.NewForConfigOrDie(cfg).Resource(engine.OperatorResource)
	poll.Eventually(t, 30*time.Second, "Ready=True written by "+identity, func(ctx context.Context) (bool, string, error) {
		o, err := res.Get(ctx, "memcached", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		id, _, _ := unstructured.NestedString(o.Object, "status", "gateway", "identity")
		return readyTrue(o) && id == identity, id, nil
	})

	if err := stop(); err != nil {
		t.Fatalf("RunElected = %v, want a clean stop", err)
	}
	o, err := res.Get(context.Background(), "memcached", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g, found, _ := unstructured.NestedFieldNoCopy(o.Object, "status", "gateway"); found {
		t.Errorf("status.gateway once the gateway stopped = %v, want none", g)
	}
	if out, _, err := execute(t, "status", "memcached", "--kubeconfig", kc); err != nil || !strings.Contains(out, "Ready False") {
		t.Errorf("status memcached once the gateway stopped (err %v): want Ready False:\n%s", err, out)
	}

	// The older gateway takes the Lease and writes its Ready=True as it
	// does: a merge patch of the conditions, nothing of status.gateway.
	putLease(t, cfg, ns, leaseName, "gateway-old", time.Now(), 15)
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if m := c.(map[string]any); m["type"] == "Ready" {
			m["status"], m["reason"], m["message"] = "True", "Running", "run by the older gateway"
		}
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": conds}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Patch(context.Background(), "memcached", types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	out, _, err := execute(t, "status", "memcached", "--kubeconfig", kc)
	if err != nil {
		t.Fatalf("status memcached: %v\n%s", err, out)
	}
	if want := "Ready True,"; !strings.Contains(out, want) || strings.Contains(out, "stale") {
		t.Errorf("status memcached, the older gateway leading: want %q and no stale:\n%s", want, out)
	}
}

// runElected runs a gateway elected under Lease ns/lease as identity until
// stop is called or the test ends; ended is closed once it has ended by
// itself or stopped, and stop says how it ended.
func runElected(t *testing.T, cfg *rest.Config, ns, lease, identity string) (ended <-chan struct{}, stop func() error) {
	t.Helper()
	gw, err := runner.New(cfg, runner.Options{Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var result error
	go func() {
		defer close(finished)
		result = gw.RunElected(ctx, runner.Election{Namespace: ns, Name: lease, Identity: identity,
			LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond})
	}()
	stop = func() error {
		cancel()
		select {
		case <-finished:
			return result
		case <-time.After(30 * time.Second):
			return errors.New("the gateway did not stop within 30s")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil && !errors.Is(err, runner.ErrLeadershipLost) {
			t.Error(err)
		}
	})
	return finished, stop
}

// A leader that lost the Lease may still have a status write in flight;
// landing after the new leader's, it leaves the new leader's Ready (the
// same Ready) naming the old leader, which status then shows as stale
// though the new leader runs the operator. The elected gateway takes its
// Ready back: a Ready it holds the Lease for names it.
func TestAnElectedGatewayTakesBackAReadyALostLeaderWroteLate(t *testing.T) {
	cfg := startAPIServer(t)
	kc := writeKubeconfig(t, cfg, "", "")
	const ns, leaseName, identity = "default", "opgate-gateway", "gateway-new"
	runElected(t, cfg, ns, leaseName, identity)
	createOperator(t, cfg, "memcached", nil)
	res := dynamic.NewForConfigOrDie(cfg).Resource(engine.OperatorResource)
	writtenBy := func(want string) func(ctx context.Context) (bool, string, error) {
		return func(ctx context.Context) (bool, string, error) {
			o, err := res.Get(ctx, "memcached", metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			id, _, _ := unstructured.NestedString(o.Object, "status", "gateway", "identity")
			return readyTrue(o) && id == want, "status.gateway.identity " + id, nil
		}
	}
	poll.Eventually(t, 30*time.Second, "Ready=True written by "+identity, writtenBy(identity))

	setWriter(t, cfg, "memcached", elected(ns, "gateway-old")(leaseName))
	poll.Eventually(t, 30*time.Second, "Ready=True taken back by "+identity, writtenBy(identity))
	if out, _, err := execute(t, "status", "memcached", "--kubeconfig", kc); err != nil || strings.Contains(out, "stale") {
		t.Errorf("status memcached, its leader running it (err %v): want no stale:\n%s", err, out)
	}
}
