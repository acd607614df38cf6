package runner

import (
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func TestAStandbyIsReadyOnlyWhileAnotherReplicaRenewsTheLease(t *testing.T) {
	now := time.Unix(1000, 0)
	w := newLeaseWatch(Election{Namespace: "ops", Name: "gw", LeaseDuration: 15 * time.Second}, func() time.Time { return now })
	leases := schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
	renewal := 0
	renewed := func() {
		renewal++
		raw := []byte(`{"holderIdentity":"other","renewTime":"` + time.Unix(int64(renewal), 0).String() + `"}`)
		w.read(&resourcelock.LeaderElectionRecord{HolderIdentity: "other"}, raw, nil)
	}
	wantReady := func(step string) {
		t.Helper()
		if err := w.ready(); err != nil {
			t.Errorf("%s: not ready: %v", step, err)
		}
	}
	wantNotReady := func(step string, says ...string) {
		t.Helper()
		err := w.ready()
		if err == nil {
			t.Errorf("%s: ready", step)
			return
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", step, err, s)
			}
		}
	}

	wantNotReady("before the Lease was read", "ops/gw")
	renewed()
	wantReady("another replica holds the Lease")
	for range 5 {
		now = now.Add(2 * time.Second)
		renewed()
	}
	wantReady("the holder renews the Lease")

	now = now.Add(2 * time.Second)
	w.read(nil, nil, errors.New("connection refused"))
	wantReady("one read failed (no flapping)")
	now = now.Add(14 * time.Second)
	w.read(nil, nil, errors.New("connection refused"))
	wantNotReady("reads failed for a lease duration", "ops/gw", "connection refused")

	renewed()
	wantReady("a read succeeds again")
	w.wrote("update", apierrors.NewConflict(leases, "gw", errors.New("changed")))
	now = now.Add(16 * time.Second)
	w.read(&resourcelock.LeaderElectionRecord{HolderIdentity: "other"}, w.raw, nil)
	wantNotReady("the holder stopped renewing", "no replica renews", "ops/gw")
	w.wrote("update", apierrors.NewForbidden(leases, "gw", errors.New("RBAC")))
	wantNotReady("this replica may not take the Lease over", "cannot update", "ops/gw", "forbidden")

	w = newLeaseWatch(Election{Namespace: "missing", Name: "gw", LeaseDuration: 15 * time.Second}, func() time.Time { return now })
	w.read(nil, nil, apierrors.NewNotFound(leases, "gw"))
	w.wrote("create", apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "missing"))
	wantNotReady("the Lease cannot be created", "cannot create", "missing/gw", `namespaces "missing" not found`)
}
