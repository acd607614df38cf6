package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// envInt reads a positive integer setting of a scenario from the
// environment, with its default.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// TestBurstWithFlakyHandlerLosesNoChange creates OPGATE_BURST_OBJECTS
// Widgets (1000 by default), updates each and deletes every other one, all
// at once, while the handler fails 30% of calls at random, seeded by
// OPGATE_BURST_SEED.
func TestBurstWithFlakyHandlerLosesNoChange(t *testing.T) {
	objects := envInt(t, "OPGATE_BURST_OBJECTS", 1000)
	seed := uint64(envInt(t, "OPGATE_BURST_SEED", 1))
	const failRate = 0.3
	ns := newNamespace(t)
	run := newFaultRun(t, ns)
	var (
		mu       sync.Mutex
		rng      = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		failed   atomic.Int64
		answered atomic.Int64
	)
	srv := newRecordedServer(t, run, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		fail := rng.Float64() < failRate
		mu.Unlock()
		answered.Add(1)
		if fail {
			failed.Add(1)
			http.Error(w, "random failure", http.StatusServiceUnavailable)
			return
		}
		writeAnswer(w, req)
	}))
	startGateway(t, run.expect(faultOperator(t, "burst", ns, srv.URL, 2*time.Second, nil)))

	ctx := context.Background()
	// The burst meets a running operator.
	if err := run.create(ctx, "warmup", "v1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error { return statusMessage(t, ns, "warmup", "image v1") })
	start := time.Now()
	names := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, objects)
	for range 8 { // writers at once, as a burst from several clients
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range names {
				name := fmt.Sprintf("b%04d", i)
				err := run.create(ctx, name, "v1")
				if err == nil {
					err = run.setImage(ctx, name, "v2")
				}
				if err == nil && i%2 == 0 {
					err = run.remove(ctx, name)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range objects {
		names <- i
	}
	close(names)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	written := time.Since(start)
	rep, took := run.chk.AssertEventually(t, 5*time.Minute)
	t.Logf("burst of %d objects (seed %d): written in %s, invariants hold %s later; %d calls, %d failed at random, %d duplicates",
		objects, seed, written.Round(100*time.Millisecond), took.Round(100*time.Millisecond), answered.Load(), failed.Load(), rep.Duplicates)
}
