package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// speedProbe measures how fast the machine runs two fixed pieces of work,
// over and over while the runs go on, as the CPU time each takes on a
// thread of its own:
//
//   - compute: hashing a buffer that stays in the core's own cache. Only
//     the host changes its cost: a lower clock, a busy hyperthread
//     sibling, or time taken by the hypervisor, which reports no steal
//     time here (/proc/stat's steal stays 0) and so charges it to
//     whatever thread ran.
//   - memory: reading one byte per page of a buffer larger than the
//     core's cache, out of order. Its cost also rises with what the run's
//     own processes do to the shared caches and the memory bus.
//
// The same compute unit taking longer in one phase than in another means
// the host ran slower then, not the system measured.
type speedProbe struct {
	mu     sync.Mutex
	totals probeTotals
	hot    []byte // compute: hashed, fits the L1 cache
	cold   []byte // memory: walked, far larger than L2
	sink   byte   // what the units computed, kept so the compiler keeps them
}

// probeTotals are the probe's units so far and the thread CPU their two
// parts took.
type probeTotals struct {
	Units          int64
	ComputeSeconds float64
	MemorySeconds  float64
}

func (t probeTotals) minus(o probeTotals) probeTotals {
	return probeTotals{Units: t.Units - o.Units, ComputeSeconds: t.ComputeSeconds - o.ComputeSeconds, MemorySeconds: t.MemorySeconds - o.MemorySeconds}
}

// micros is the mean thread CPU of one unit's compute and memory parts; 0
// when none ran.
func (t probeTotals) micros() (compute, memory float64) {
	if t.Units <= 0 {
		return 0, 0
	}
	return t.ComputeSeconds * 1e6 / float64(t.Units), t.MemorySeconds * 1e6 / float64(t.Units)
}

const (
	probeHotBytes  = 16 << 10
	probeColdBytes = 4 << 20
	probeHashes    = 16
	// probeEvery: 10 units a second, a few tenths of a per cent of a core.
	probeEvery = 100 * time.Millisecond
)

func newSpeedProbe() *speedProbe {
	p := &speedProbe{hot: make([]byte, probeHotBytes), cold: make([]byte, probeColdBytes)}
	for i := range p.cold {
		p.cold[i] = byte(i * 131)
	}
	copy(p.hot, p.cold)
	return p
}

// run measures a unit every probeEvery until ctx ends. It allocates
// nothing per unit, so the harness's garbage collector charges it no
// assist work.
func (p *speedProbe) run(ctx context.Context) error {
	// The thread's CPU clock counts only while this goroutine runs on it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		t0, err := threadCPU()
		if err != nil {
			return err
		}
		got := p.compute()
		t1, err := threadCPU()
		if err != nil {
			return err
		}
		got ^= p.memory()
		t2, err := threadCPU()
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.sink ^= got
		p.totals.Units++
		p.totals.ComputeSeconds += (t1 - t0).Seconds()
		p.totals.MemorySeconds += (t2 - t1).Seconds()
		p.mu.Unlock()
	}
}

// compute hashes the hot buffer probeHashes times.
func (p *speedProbe) compute() byte {
	var acc byte
	for range probeHashes {
		sum := sha256.Sum256(p.hot)
		acc ^= sum[0]
		p.hot[0] = acc // each hash depends on the one before
	}
	return acc
}

// memory reads one byte per page and cache line of the cold buffer, in an
// order the prefetcher cannot follow.
func (p *speedProbe) memory() byte {
	var acc byte
	const stride = 4096 + 64
	for i := 0; i < len(p.cold); i += stride {
		acc ^= p.cold[(i*7919)%len(p.cold)]
	}
	return acc
}

func (p *speedProbe) snapshot() probeTotals {
	if p == nil {
		return probeTotals{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.totals
}

func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("speed probe: thread CPU clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}
