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

// speedProbe times a fixed computation on a thread of its own, over and
// over while the runs go on: the CPU time that hashing a buffer small
// enough to stay in the core's cache takes, by that thread's CPU clock. A
// host that ran its guest slower (a lower clock, a busy hyperthread
// sibling, time the hypervisor takes without accounting it as steal) would
// show as a higher figure. So would the run's own load: the thread shares
// the machine's two cores, and after each 100 ms asleep its caches hold
// other processes' data (one untimed hash reloads the buffer first). On
// this machine it moved ±13 % between phases without tracking throughput
// (docs/performance.md): a check for gross slowdowns of the host, not a
// correction of the ratios. Steal time the kernel does account is left
// out of a thread's CPU clock; machineUsage records it apart.
type speedProbe struct {
	mu     sync.Mutex
	totals probeTotals
	hot    []byte // hashed; fits the L1 cache
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
		p.hash() // untimed: the buffer back into the cache
		start, err := threadCPU()
		if err != nil {
			return err
		}
		for range probeHashes {
			p.hash()
		}
		end, err := threadCPU()
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.totals.Units++
		p.totals.CPUSeconds += (end - start).Seconds()
		p.mu.Unlock()
	}
}

// hash hashes the buffer into its own first bytes, so that each hash
// depends on the one before and none can be left out.
func (p *speedProbe) hash() {
	sum := sha256.Sum256(p.hot)
	copy(p.hot, sum[:])
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
