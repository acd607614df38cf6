package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSystemsProcessesGetTheTunedGOMAXPROCS(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tune  tuning
		wants string
	}{
		{"set", tuning{GOMAXPROCS: 1}, "GOMAXPROCS=1"},
		{"unset leaves Go's default", tuning{}, "GOMAXPROCS="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", "")
			log := filepath.Join(t.TempDir(), "env.log")
			c, err := startChild("env", log, tc.tune.environ(), "/bin/sh", "-c", `echo "GOMAXPROCS=$GOMAXPROCS"`)
			if err != nil {
				t.Fatal(err)
			}
			<-c.done
			out, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != tc.wants {
				t.Errorf("child's environment: %q, want %q", got, tc.wants)
			}
		})
	}
}

func TestUsageCountsEveryThreadsContextSwitches(t *testing.T) {
	before, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Each sleep on another goroutine's thread is a voluntary switch.
	done := make(chan struct{})
	go func() {
		for range 50 {
			time.Sleep(time.Millisecond)
		}
		close(done)
	}()
	<-done
	after, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.ContextSwitches-before.ContextSwitches < 50 {
		t.Errorf("context switches %v → %v over 50 sleeps", before.ContextSwitches, after.ContextSwitches)
	}
	if after.PeakRSSMiB <= 0 || after.RSSMiB <= 0 || after.PeakRSSMiB < after.RSSMiB {
		t.Errorf("RSS %.1f MiB, peak %.1f MiB", after.RSSMiB, after.PeakRSSMiB)
	}
}

func TestMachineUsageCountsBusyTimeAndSwitches(t *testing.T) {
	before, err := readMachineUsage()
	if err != nil {
		t.Fatal(err)
	}
	// Busy for at least 100 ms of CPU (10 clock ticks).
	own, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for spin := own.CPUSeconds; spin < own.CPUSeconds+0.1; {
		u, err := readUsage(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		spin = u.CPUSeconds
	}
	after, err := readMachineUsage()
	if err != nil {
		t.Fatal(err)
	}
	if busy := after.BusySeconds - before.BusySeconds; busy < 0.09 {
		t.Errorf("machine busy %.2f s while this process spent 0.1 s of CPU", busy)
	}
	if after.ContextSwitches <= before.ContextSwitches {
		t.Errorf("machine context switches %v → %v", before.ContextSwitches, after.ContextSwitches)
	}
}
