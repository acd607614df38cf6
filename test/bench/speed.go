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

// speedProbe measures how fast the host runs a fixed computation, over
// and over while the runs go on: the CPU time that hashing a buffer small
// enough to stay in the core's own cache takes on a thread of its own.
// Only the host changes that cost: a lower clock, a busy hyperthread
// sibling, or time taken by the hypervisor, which reports no steal time
// here (/proc/stat's steal stays 0) and so charges it to whatever thread
// ran. The same unit taking longer in one phase than in another means the
// host ran slower then, not the system measured.
//
// A second part that read a page each of 4 MiB was tried and dropped: it
// rose six-fold over an N=1000 invocation, in every run alike, while the
// control plane's CPU per object did not follow; what it measured (the
// buffer's pages, the TLB) was the probe's own.
type speedProbe struct {
	mu     sync.Mutex
	totals probeTotals
	hot    []byte // hashed; fits the L1 cache
	sink   byte   // what the units computed, kept so the compiler keeps them
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
	probeHotBytes = 16 << 10
	probeHashes   = 16
	// probeEvery: 10 units a second, about 0.2 % of a core.
	probeEvery = 100 * time.Millisecond
)

func newSpeedProbe() *speedProbe {
	p := &speedProbe{hot: make([]byte, probeHotBytes)}
	for i := range p.hot {
		p.hot[i] = byte(i * 131)
	}
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

// unit hashes the buffer probeHashes times, each hash depending on the
// one before.
func (p *speedProbe) unit() byte {
	var acc byte
	for range probeHashes {
		sum := sha256.Sum256(p.hot)
		acc ^= sum[0]
		p.hot[0] = acc
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
