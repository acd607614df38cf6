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

// speedProbe measures how fast the machine runs a fixed piece of work,
// over and over while the runs go on: the CPU time one unit takes on a
// thread of its own. The same unit taking longer in one phase than in
// another means the host ran slower then (another guest on it, a lower
// clock, caches shared with busier neighbours), not the system measured.
// The hypervisor here reports no steal time (/proc/stat's steal stays 0),
// so time taken from the guest is charged to whatever thread ran: it shows
// in the probe's CPU time as in everyone's.
type speedProbe struct {
	mu     sync.Mutex
	totals probeTotals
	// work is what one unit touches: hashed in full and walked by a
	// stride that defeats the prefetcher, so the unit costs both compute
	// and memory.
	work []byte
	sink byte // what the units computed, kept so the compiler keeps them
}

// probeTotals are the probe's units so far and the thread CPU they took.
type probeTotals struct {
	Units      int64
	CPUSeconds float64
}

func (t probeTotals) minus(o probeTotals) probeTotals {
	return probeTotals{Units: t.Units - o.Units, CPUSeconds: t.CPUSeconds - o.CPUSeconds}
}

// microsPerUnit is the mean thread CPU one unit took; 0 when none ran.
func (t probeTotals) microsPerUnit() float64 {
	if t.Units <= 0 {
		return 0
	}
	return t.CPUSeconds * 1e6 / float64(t.Units)
}

const (
	// probeBytes is larger than the L2 cache of the machines this runs
	// on and well inside L3: a unit reads it from a cache the control
	// plane shares.
	probeBytes = 4 << 20
	// probeEvery: 10 units a second, well under 1 % of a core.
	probeEvery = 100 * time.Millisecond
)

func newSpeedProbe() *speedProbe {
	work := make([]byte, probeBytes)
	for i := range work {
		work[i] = byte(i * 131)
	}
	return &speedProbe{work: work}
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
		start, err := threadCPU()
		if err != nil {
			return err
		}
		got := p.unit()
		end, err := threadCPU()
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.sink ^= got
		p.totals.Units++
		p.totals.CPUSeconds += (end - start).Seconds()
		p.mu.Unlock()
	}
}

// unit is the fixed work, about half a millisecond here: a SHA-256 of the
// buffer's first 256 KiB and a walk over all of it, one byte per page and
// cache line, out of order.
func (p *speedProbe) unit() byte {
	sum := sha256.Sum256(p.work[:256<<10])
	acc := sum[0]
	const stride = 4096 + 64
	for i := 0; i < len(p.work); i += stride {
		acc ^= p.work[(i*7919)%len(p.work)]
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
