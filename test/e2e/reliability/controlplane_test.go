package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/test/invariant"
)

// outage is how long etcd and the API server stay down.
const outage = 30 * time.Second

// TestEtcdAndAPIServerDownFor30sLosesNothing kills etcd and the API server
// while the test creates, updates and deletes objects (its writes retry
// until the API server is back), keeps them down for 30 s and starts them
// again.
func TestEtcdAndAPIServerDownFor30sLosesNothing(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond, 300*time.Millisecond)
	gw := newGateway(t, "gateway", w.op)
	gw.waitReady(time.Minute)

	wait := w.startWorkload(w.workload("c", 10, 40, 0.4), 400*time.Millisecond)
	w.waitCallsInFlight(8)
	downAt := time.Now()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if err := cluster.StopComponent(name, true); err != nil {
			t.Fatal(err)
		}
	}
	callsBefore := len(w.chk.Recorder.Calls())
	time.Sleep(outage) // the fault itself: the control plane stays down this long
	upAt := startControlPlane(t)
	t.Logf("control plane down %s, back in %s", outage, upAt.Sub(downAt).Round(100*time.Millisecond)-outage)
	wait()
	lastWrite := time.Now()
	rep, took := w.chk.AssertEventually(t, 3*time.Minute)
	t.Logf("figure: etcd and kube-apiserver SIGKILLed for %s; invariants hold %s after the API server was ready again and %s after the last write (the garbage collector's own recovery included); the last handler answer came %s after the last write; %d calls during the outage; %d duplicate deliveries",
		outage, time.Since(upAt).Round(100*time.Millisecond), took.Round(100*time.Millisecond),
		lastAnswer(w).Sub(lastWrite).Round(100*time.Millisecond), len(w.chk.Recorder.Calls())-callsBefore, rep.Duplicates)
}

// lastAnswer is when the handler last answered the gateway: once the
// invariants hold, when the gateway's part of the recovery was done.
func lastAnswer(w *world) time.Time {
	var last time.Time
	for _, c := range w.chk.Recorder.Calls() {
		if c.At.After(last) {
			last = c.At
		}
	}
	return last
}

// startControlPlane starts etcd, then the API server, and returns when the
// API server is ready.
func startControlPlane(t *testing.T) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if err := cluster.StartComponent(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	return time.Now()
}

// TestWatchesSurviveCompactionAndAnIdleAPIServerRestart leaves the
// gateway's watches idle while other writes move etcd on and compaction
// removes the revision they last saw, then restarts the API server: the
// watches resume from a compacted revision (410 Gone) and must relist, not
// die silently. Changes made afterwards must all arrive, a child's too: a
// child deleted by someone else is seen (only its own watch tells) and
// applied again.
func TestWatchesSurviveCompactionAndAnIdleAPIServerRestart(t *testing.T) {
	w := newWorld(t, 0, 50*time.Millisecond)
	gw := newGateway(t, "gateway", w.op)
	gw.waitReady(time.Minute)
	ctx := context.Background()
	names := []string{"idle-0", "idle-1", "idle-2", "idle-3"}
	const kept = "idle-kept" // unchanged: only the deletion of its child moves it
	for _, name := range append(names, kept) {
		if err := w.create(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	w.chk.AssertEventually(t, 2*time.Minute)

	list, err := w.res.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	idleFrom := time.Now()
	waitCompacted(t, w, list.GetResourceVersion())
	t.Logf("revision %s compacted after %s of idle watches", list.GetResourceVersion(), time.Since(idleFrom).Round(100*time.Millisecond))
	if err := cluster.StopComponent("kube-apiserver", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second) // the fault: the API server stays down, the watches idle
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := cluster.StartComponent(rctx, "kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	for _, name := range names[:2] {
		if err := w.update(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names[2:] {
		if err := w.remove(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.create(ctx, "after-restart"); err != nil {
		t.Fatal(err)
	}
	child, err := w.kube.CoreV1().ConfigMaps(w.ns).Get(ctx, kept+"-cm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.kube.CoreV1().ConfigMaps(w.ns).Delete(ctx, child.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the deleted child applied again", func(ctx context.Context) (bool, string, error) {
		cm, err := w.kube.CoreV1().ConfigMaps(w.ns).Get(ctx, child.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "not re-created yet", nil
		}
		return err == nil && cm.UID != child.UID, "", err
	})
	rep, _ := w.chk.AssertEventually(t, 2*time.Minute)
	t.Logf("figure: watches idle %s until their revision was compacted, API server down 10s; invariants hold %s after it was ready (the garbage collector's own recovery included); the last handler answer came %s after it was ready; %d duplicate deliveries",
		upAt.Sub(idleFrom).Round(100*time.Millisecond), time.Since(upAt).Round(100*time.Millisecond),
		lastAnswer(w).Sub(upAt).Round(100*time.Millisecond), rep.Duplicates)
}

// waitCompacted writes ConfigMaps in the test's namespace (no Probe
// changes, so the gateway's watches stay idle) until a list at revision rv
// is refused as expired: etcd compacted it.
func waitCompacted(t *testing.T, w *world, rv string) {
	t.Helper()
	i := 0
	eventually(t, time.Minute, "revision "+rv+" compacted", func(ctx context.Context) (bool, string, error) {
		i++
		cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "churn"}, "data": map[string]any{"i": fmt.Sprint(i)}}}
		body, _ := cm.MarshalJSON()
		_, err := w.kube.CoreV1().ConfigMaps(w.ns).Patch(ctx, "churn", types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: "churn", Force: ptr(true)})
		if err != nil {
			return false, "", err
		}
		_, err = w.res.List(ctx, metav1.ListOptions{ResourceVersion: rv, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return true, "", nil
		}
		return false, fmt.Sprintf("list at %s: %v", rv, err), nil
	})
}

func ptr[T any](v T) *T { return &v }

var _ = invariant.Created
