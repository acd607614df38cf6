package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWaitQuietWaitsForAWindowBelowTheShare(t *testing.T) {
	const window = 20 * time.Millisecond
	// Each read adds busy time as a share of the window that passed.
	for _, tc := range []struct {
		name      string
		shares    []float64 // busy per window, in cores
		limit     time.Duration
		wantReads int
		wantQuiet bool
	}{
		{"quiet at once", []float64{0.01}, time.Second, 2, true},
		{"busy, then quiet", []float64{1.5, 0.9, 0.05}, time.Second, 4, true},
		{"over the share is busy", []float64{quietShare * 1.5, 0}, time.Second, 3, true},
		// How many windows fit depends on the timer's slack.
		{"never quiet: starts at the limit", []float64{2}, 3 * window, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads, busy, last := 0, 0.0, time.Now()
			read := func() (machineUsage, error) {
				if reads > 0 {
					// As busy as the table says over the time that passed.
					busy += tc.shares[min(reads-1, len(tc.shares)-1)] * time.Since(last).Seconds()
				}
				last = time.Now()
				reads++
				return machineUsage{BusySeconds: busy}, nil
			}
			start := time.Now()
			w, err := waitQuiet(context.Background(), read, window, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantQuiet && time.Since(start) < tc.limit {
				t.Errorf("gave up after %v, before the limit %v", time.Since(start), tc.limit)
			}
			if (tc.wantReads > 0 && reads != tc.wantReads) || w.Quiet != tc.wantQuiet || w.Seconds <= 0 {
				t.Errorf("reads %d quiet %v, want %d %v (%+v)", reads, w.Quiet, tc.wantReads, tc.wantQuiet, w)
			}
			if want := tc.shares[min(reads-2, len(tc.shares)-1)]; w.Cores < want*0.5 || w.Cores > want*1.5+0.01 {
				t.Errorf("last window %.3f cores, want about %.3f", w.Cores, want)
			}
		})
	}
}

func TestWaitQuietStopsWithItsContextAndOnAReadError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := waitQuiet(ctx, func() (machineUsage, error) { return machineUsage{}, nil }, time.Hour, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
	bad := errors.New("no /proc/stat")
	if _, err := waitQuiet(context.Background(), func() (machineUsage, error) { return machineUsage{}, bad }, time.Millisecond, time.Hour); !errors.Is(err, bad) {
		t.Errorf("read error: %v, want it", err)
	}
}

func TestReportNamesTheRunsThatStartedOnABusyMachine(t *testing.T) {
	quiet := quietWait{Seconds: 2.5, Cores: 0.04, Quiet: true}
	busy := quietWait{Seconds: 61, Cores: 0.8}
	rep := &report{QuietLimit: time.Minute, Phases: []phaseResult{
		{System: systemRaw, Workload: workloadFast, Mode: modeBacklog, Phase: evCreate, Round: 1, QuietWait: quiet},
		{System: systemRaw, Workload: workloadFast, Mode: modeBacklog, Phase: evUpdate, Round: 1, QuietWait: quiet},
		{System: systemGateway, Workload: workloadFast, Mode: modeBacklog, Phase: evCreate, Round: 2, QuietWait: busy},
		{System: systemGateway, Workload: workloadFast, Mode: modeBacklog, Phase: evUpdate, Round: 2, QuietWait: busy},
	}}
	md := rep.markdown()
	for _, want := range []string{"61.0 s at most", "started busy after 1m0s: gateway-fast-backlog-r2 (0.80 cores)\n"} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in:\n%s", want, md)
		}
	}
	rep.Phases = rep.Phases[:2]
	if md := rep.markdown(); strings.Contains(md, "started busy") || !strings.Contains(md, "2.5 s at most") {
		t.Errorf("quiet runs reported as:\n%s", md)
	}
	rep.QuietLimit = 0
	if md := rep.markdown(); !strings.Contains(md, "no wait for a quiet machine") || strings.Contains(md, "s at most") {
		t.Errorf("runs that did not wait reported as:\n%s", md)
	}
}
