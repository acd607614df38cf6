package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaseWatch keeps what the elector's attempts on the Lease found, for the
// readiness of a standby: it is ready only while another replica renews the
// Lease. One that cannot read or take the Lease would otherwise count as
// ready while no replica leads, and a rolling update would finish with
// nothing running.
type leaseWatch struct {
	lease  string        // namespace/name, for messages
	within time.Duration // the lease duration
	now    func() time.Time

	mu      sync.Mutex
	raw     []byte    // the record last read
	changed time.Time // when the record last changed: its holder renewed it
	held    time.Time // the last read that showed a holder renewing the Lease
	err     error     // the last failure on the Lease, until a read succeeds
}

func newLeaseWatch(e Election, now func() time.Time) *leaseWatch {
	return &leaseWatch{lease: e.Namespace + "/" + e.Name, within: e.LeaseDuration, now: now}
}

func (w *leaseWatch) read(rec *resourcelock.LeaderElectionRecord, raw []byte, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if !apierrors.IsNotFound(err) { // else the elector creates it
			w.err = fmt.Errorf("cannot read the leader election Lease %s: %w", w.lease, err)
		}
		return
	}
	now := w.now()
	w.err = nil
	// Changes judged by the local clock, as the elector judges them: the
	// holder's renewTime comes from another clock.
	if !bytes.Equal(raw, w.raw) {
		w.raw, w.changed = raw, now
	}
	if rec.HolderIdentity != "" && now.Sub(w.changed) < w.within {
		w.held = now
	}
}

func (w *leaseWatch) wrote(verb string, err error) {
	// A conflict is a race with another replica's write, which the next
	// read sees.
	if err == nil || apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = fmt.Errorf("cannot %s the leader election Lease %s: %w", verb, w.lease, err)
}

// ready is nil while a recent read (within the lease duration, so that one
// failed request does not flap /readyz) showed another replica renewing the
// Lease; else it names what went wrong.
func (w *leaseWatch) ready() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !w.held.IsZero() && w.now().Sub(w.held) < w.within:
		return nil
	case w.err != nil:
		return fmt.Errorf("standby: %w", w.err)
	case w.raw == nil:
		return errors.New("standby: the leader election Lease " + w.lease + " not read yet")
	}
	return fmt.Errorf("standby: no replica renews the leader election Lease %s", w.lease)
}

// watchedLock is the elector's lock, telling w what each request found.
type watchedLock struct {
	resourcelock.Interface
	w *leaseWatch
}

func (l watchedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	l.w.read(rec, raw, err)
	return rec, raw, err
}

func (l watchedLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, rec)
	l.w.wrote("create", err)
	return err
}

func (l watchedLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, rec)
	l.w.wrote("update", err)
	return err
}
