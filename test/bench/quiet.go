package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Before a run's measured part starts, the machine must be quiet: the runs
// before it may leave work behind (dirty pages of their etcd data and logs,
// removed or not; processes winding down). It was suspected of making the
// system that ran first in a round do worse; since the wait, every run has
// found the machine quiet at once (docs/performance.md).
const (
	// quietShare: at most this share of a core busy over a window. An idle
	// control plane with its system's handler takes 2–6 %.
	quietShare  = 0.15
	quietWindow = time.Second
)

// quietWait is what waiting for a quiet machine found.
type quietWait struct {
	Seconds float64 `json:"seconds"` // waited
	Cores   float64 `json:"cores"`   // busy over the last window
	Quiet   bool    `json:"quiet"`   // false: the limit passed first
}

// syncDisks writes dirty pages back, the runs before's included, so that
// their writeback does not land in the next run. It takes as long as the
// machine's writeback takes, outside waitQuiet's limit.
func syncDisks() { unix.Sync() }

// waitQuiet waits until a window of the machine's busy time read by read
// is below quietShare of a core, or limit passes (checked after each
// window, so the wait may run one window past it): then the run starts
// anyway, with the wait and the last window's load in its results.
func waitQuiet(ctx context.Context, read func() (machineUsage, error), window, limit time.Duration) (quietWait, error) {
	start := time.Now()
	prev, err := read()
	if err != nil {
		return quietWait{}, err
	}
	var w quietWait
	for {
		t := time.Now()
		select {
		case <-ctx.Done():
			return w, ctx.Err()
		case <-time.After(window):
		}
		cur, err := read()
		if err != nil {
			return w, err
		}
		w.Cores = (cur.BusySeconds - prev.BusySeconds) / time.Since(t).Seconds()
		w.Seconds = time.Since(start).Seconds()
		if w.Cores < quietShare {
			w.Quiet = true
			return w, nil
		}
		if time.Since(start) >= limit {
			return w, nil
		}
		prev = cur
	}
}

// quietLine says in the report how long the runs waited for a quiet
// machine, and which started on a busy one.
func quietLine(limit time.Duration, phases []phaseResult) string {
	if limit <= 0 {
		return "- no wait for a quiet machine before each system started (-quiet-limit 0)\n"
	}
	longest, busy, seen := 0.0, []string{}, map[string]bool{}
	for _, p := range phases {
		r := run{System: p.System, Workload: p.Workload, Mode: p.Mode, Round: p.Round}
		if seen[r.namespace()] {
			continue
		}
		seen[r.namespace()] = true
		longest = max(longest, p.QuietWait.Seconds)
		if !p.QuietWait.Quiet {
			busy = append(busy, fmt.Sprintf("%s (%.2f cores)", r.namespace(), p.QuietWait.Cores))
		}
	}
	line := fmt.Sprintf("- before each system started (and its backlog was created): dirty pages written back, then a wait for a quiet machine (under %.0f %% of a core busy over %s), %.1f s at most", quietShare*100, quietWindow, longest)
	if len(busy) > 0 {
		line += fmt.Sprintf("; started busy after %s: %s", limit, strings.Join(busy, ", "))
	}
	return line + "\n"
}
