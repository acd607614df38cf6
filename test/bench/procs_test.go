package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
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

func TestContextSwitchesAreEveryThreads(t *testing.T) {
	// Switches on other threads than the main one: goroutines sleeping
	// on threads of their own, kept until measured (an ended thread takes
	// its count along).
	var slept sync.WaitGroup
	release := make(chan struct{})
	defer close(release)
	for range 4 {
		slept.Add(1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for range 50 {
				time.Sleep(time.Millisecond)
			}
			slept.Done()
			<-release
		}()
	}
	slept.Wait()
	var before, after syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &before); err != nil {
		t.Fatal(err)
	}
	got, err := readContextSwitches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &after); err != nil {
		t.Fatal(err)
	}
	// The kernel's own sum over the process's threads.
	low, high := float64(before.Nvcsw+before.Nivcsw), float64(after.Nvcsw+after.Nivcsw)
	if got < low || got > high {
		t.Errorf("context switches %.0f, want between %.0f and %.0f (getrusage)", got, low, high)
	}
	main, err := readStatus(fmt.Sprintf("/proc/%d/status", os.Getpid()), "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
	if err != nil {
		t.Fatal(err)
	}
	if mainOnly := main["voluntary_ctxt_switches"] + main["nonvoluntary_ctxt_switches"]; got <= mainOnly {
		t.Errorf("context switches %.0f, no more than the main thread's %.0f", got, mainOnly)
	}
}

func TestMachineUsageCountsBusyTimeAndSwitches(t *testing.T) {
	before, err := readMachineUsage()
	if err != nil {
		t.Fatal(err)
	}
	// Busy for at least 200 ms of CPU (20 clock ticks). The process's
	// time is its threads' exact runtime in ticks, the machine's is
	// sampled a tick at a time on each CPU: with 100 ms and a one-tick
	// slack this failed once ("machine busy 0.09 s while this process
	// spent 0.1 s of CPU"), so up to two ticks per CPU and one more may go
	// uncounted.
	own, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for spin := own.CPUSeconds; spin < own.CPUSeconds+0.2; {
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
	if busy := after.BusySeconds - before.BusySeconds; busy < 0.15 {
		t.Errorf("machine busy %.2f s while this process spent 0.2 s of CPU", busy)
	}
	if after.StealSeconds < before.StealSeconds {
		t.Errorf("machine steal time went back: %v → %v", before.StealSeconds, after.StealSeconds)
	}
	if after.ContextSwitches <= before.ContextSwitches {
		t.Errorf("machine context switches %v → %v", before.ContextSwitches, after.ContextSwitches)
	}
}
