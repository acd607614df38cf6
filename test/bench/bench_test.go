package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opgate/opgate/internal/localcluster"
)

// The test binary doubles as the raw program and the gateway's handler,
// as the harness binary does.
func TestMain(m *testing.M) {
	if code, ok := runSubcommand(os.Args); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestSmallRunMeasuresBothSystems runs the whole harness on a few objects
// so it keeps working: every phase converges for both systems, and the raw
// baseline makes exactly the writes it is meant to.
func TestSmallRunMeasuresBothSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	if err := localcluster.CheckBinaries(localcluster.DefaultBinDir()); err != nil {
		t.Fatal(err)
	}
	opts, err := parseFlags([]string{"-n", "20", "-idle", "1s", "-modes", "backlog,stream", "-workloads", "fast",
		"-out", t.TempDir(), "-phase-timeout", "90s", "-single", "3", "-warm-up", "10", "-quiet-limit", "3s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	rep, err := runBench(ctx, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	if rep.WarmUp != 10 {
		t.Errorf("warm-up: %d objects, want 10", rep.WarmUp)
	}
	for _, ns := range []string{"raw-fast-backlog", "gateway-fast-stream"} {
		// The warm-up's log beside its control plane's.
		if _, err := os.Stat(filepath.Join(opts.Out, "cluster", ns, "logs", "raw-warm-up.log")); err != nil {
			t.Errorf("run %s: warm-up log: %v", ns, err)
		}
	}
	if got := len(rep.Phases); got != 2*2*3 {
		t.Fatalf("%d phases measured, want 12 (2 systems × 2 modes × 3 phases)", got)
	}
	// Each run had a control plane of its own, warmed up.
	planes := map[int]string{}
	for _, p := range rep.Phases {
		run := p.System + " " + p.Mode
		if p.WarmUpSeconds <= 0 || p.APIServerPID <= 0 {
			t.Errorf("%s %s: warm-up %.1f s, kube-apiserver PID %d", run, p.Phase, p.WarmUpSeconds, p.APIServerPID)
		}
		// The machine is shared with the other packages' tests: whether it
		// was quiet is not knowable, that the run waited is.
		if p.QuietWait.Seconds <= 0 {
			t.Errorf("%s %s: did not wait for a quiet machine: %+v", run, p.Phase, p.QuietWait)
		}
		if other, ok := planes[p.APIServerPID]; ok && other != run {
			t.Errorf("%s and %s ran on one control plane, kube-apiserver PID %d", other, run, p.APIServerPID)
		}
		planes[p.APIServerPID] = run
	}
	for _, ns := range []string{"raw-fast-backlog", "gateway-fast-backlog", "raw-fast-stream", "gateway-fast-stream"} {
		// Its logs stay, its etcd data goes.
		if _, err := os.Stat(filepath.Join(opts.Out, "cluster", ns, "logs", "kube-apiserver.log")); err != nil {
			t.Errorf("run %s: %v", ns, err)
		}
		if _, err := os.Stat(filepath.Join(opts.Out, "cluster", ns, "etcd")); !os.IsNotExist(err) {
			t.Errorf("run %s: etcd data left behind (%v)", ns, err)
		}
	}
	var handlerCPU, handlerSwitches float64 // the gateway's handler's, over every phase
	probed := 0                             // phases the speed probe measured
	for _, p := range rep.Phases {
		name := p.System + " " + p.Mode + " " + p.Phase
		if p.ObjectsPerSecond <= 0 || p.Seconds <= 0 {
			t.Errorf("%s: %.1f s, %.1f objects/s", name, p.Seconds, p.ObjectsPerSecond)
		}
		if p.CallbacksPerObject < 1 {
			t.Errorf("%s: %.2f callbacks per object, want every object called", name, p.CallbacksPerObject)
		}
		if p.System == systemGateway && p.RatioToRaw <= 0 {
			t.Errorf("%s: no ratio to the raw baseline", name)
		}
		if p.PeakRSSMiB <= 0 || p.CPUSeconds < 0 {
			t.Errorf("%s: peak RSS %.0f MiB, CPU %.2f s", name, p.PeakRSSMiB, p.CPUSeconds)
		}
		if p.PlaneCPUMsPerObject <= 0 {
			t.Errorf("%s: control plane CPU %.2f ms per object: every phase makes the API server work", name, p.PlaneCPUMsPerObject)
		}
		if p.Phase != evDelete && (p.ServedBytes[resource] <= 0 || p.ServedBytes["deployments"] <= 0) {
			t.Errorf("%s: served bytes %v: a parent and a child exist after create and update", name, p.ServedBytes)
		}
		if p.Phase != evDelete {
			ns := p.System + "-" + p.Workload + "-" + p.Mode
			for _, res := range []string{resource, "deployments"} {
				var kept struct {
					Metadata struct{ Namespace, Name string }
				}
				data, err := os.ReadFile(filepath.Join(opts.Out, "logs", "objects", ns+"-"+p.Phase+"-"+res+".json"))
				if err == nil {
					err = json.Unmarshal(data, &kept)
				}
				if err != nil || kept.Metadata.Namespace != ns || !strings.HasPrefix(kept.Metadata.Name, "mc-") {
					t.Errorf("%s: kept %s: %v, %+v", name, res, err, kept.Metadata)
				}
			}
		}
		if p.Phase != evDelete {
			// Each write is at least one etcd update: the system's patches,
			// the workload's resize in update, each child's apply.
			w := p.Requests["PATCH "+resource] + p.Requests["PATCH "+resource+"/status"]
			if p.Phase == evUpdate {
				w++
			}
			if got := p.EtcdRequests["update "+resource]; got < w {
				t.Errorf("%s: %.2f etcd updates of %s per object for %.2f writes (etcd requests %v)", name, got, resource, w, p.EtcdRequests)
			}
			if got, w := p.EtcdRequests["update deployments"], p.Requests["APPLY deployments"]; got < w || w == 0 {
				t.Errorf("%s: %.2f etcd updates of deployments per object for %.2f applies (etcd requests %v)", name, got, w, p.EtcdRequests)
			}
		}
		// The machine's CPU holds the control plane's, give or take a
		// clock tick of each process read a moment apart.
		if slack := 4 * 1000.0 / clockTicks / float64(p.N); p.MachineCPUMsPerObject < p.PlaneCPUMsPerObject+p.CPUMsPerObject-slack {
			t.Errorf("%s: machine CPU %.2f ms per object, below the control plane's %.2f and the system's %.2f", name, p.MachineCPUMsPerObject, p.PlaneCPUMsPerObject, p.CPUMsPerObject)
		}
		// The gateway's handler is a process of its own (whose recorder
		// counted the callbacks above), measured apart; the raw program
		// has none. A few objects' calls may not reach a clock tick: the
		// whole run's must (below).
		if p.HandlerCPUMsPerObject < 0 || (p.System == systemRaw && p.HandlerCPUMsPerObject != 0) {
			t.Errorf("%s: handler CPU %.2f ms per object", name, p.HandlerCPUMsPerObject)
		}
		if p.System == systemGateway {
			handlerCPU += p.HandlerCPUMsPerObject * float64(p.N)
			handlerSwitches += p.HandlerContextSwitchesPerObject * float64(p.N)
		}
		if _, err := os.Stat(filepath.Join(opts.Out, "logs", "handler-"+p.System+"-"+p.Workload+"-"+p.Mode+".log")); (p.System == systemGateway) != (err == nil) {
			t.Errorf("%s: handler log: %v", name, err)
		}
		// A phase shorter than the probe's period may see no unit.
		if p.ProbeMicrosPerUnit > 0 {
			probed++
		} else if p.ProbeMicrosPerUnit < 0 {
			t.Errorf("%s: speed probe %.1f µs per unit", name, p.ProbeMicrosPerUnit)
		}
		if p.StealCPUMsPerObject < 0 {
			t.Errorf("%s: steal %.2f ms per object", name, p.StealCPUMsPerObject)
		}
		if p.HarnessCPUMsPerObject < 0 {
			t.Errorf("%s: harness CPU %.2f ms per object", name, p.HarnessCPUMsPerObject)
		}
		if p.ContextSwitchesPerObject <= 0 || p.MachineContextSwitchesPerObject < p.ContextSwitchesPerObject {
			t.Errorf("%s: context switches per object %.1f of the system, %.1f of the machine", name, p.ContextSwitchesPerObject, p.MachineContextSwitchesPerObject)
		}
		// Every phase changes each parent, which the system and the tracker
		// watch, and each child, which the tracker watches.
		if p.WatchEvents["events "+resource] < 2 || p.WatchEvents["bytes "+resource] <= 0 || p.WatchEvents["events deployments"] < 1 ||
			p.WatchEvents["encodings "+resource] <= 0 || p.WatchEvents["encodings "+resource] > p.WatchEvents["events "+resource] {
			t.Errorf("%s: watch events per object %v", name, p.WatchEvents)
		}
		if p.PlaneCPUMsPerObjectBy["kube-apiserver"] <= 0 || p.PlaneCPUMsPerObjectBy["etcd"] <= 0 {
			t.Errorf("%s: control plane CPU by process %v: the API server and etcd work in every phase", name, p.PlaneCPUMsPerObjectBy)
		}
		if p.System == systemRaw && p.Phase != evDelete {
			// create: finalizer and state; update: state.
			state := map[string]float64{evCreate: 2, evUpdate: 1}[p.Phase]
			for k, want := range map[string]float64{"APPLY deployments": 1, "PATCH memcacheds/status": 1, "PATCH memcacheds": state} {
				if got := p.Requests[k]; got != want {
					t.Errorf("%s: %s %.2f per object, want %.0f (requests %v)", name, k, got, want, p.Requests)
				}
			}
		}
	}
	// The handler process served every callback of the gateway's runs: its
	// CPU and wake-ups are read from it, not from another process that
	// does nothing per callback.
	if handlerCPU <= 0 || handlerSwitches < float64(opts.N) {
		t.Errorf("the gateway's handler: %.1f ms of CPU and %.0f context switches over every phase", handlerCPU, handlerSwitches)
	}
	if probed == 0 {
		t.Error("the speed probe measured no phase")
	}
	if len(rep.Steady) != 2 {
		t.Errorf("steady state measured for %d systems, want 2: %+v", len(rep.Steady), rep.Steady)
	}
	for _, s := range rep.Steady {
		if s.Seconds < 1 || s.RSSMiB <= 0 {
			t.Errorf("steady state, %s: %+v", s.System, s)
		}
	}
	if len(rep.Single) != 2 {
		t.Errorf("single-object latency measured for %d systems, want 2: %+v", len(rep.Single), rep.Single)
	}
	for _, s := range rep.Single {
		if s.Count != 3 || s.P50Ms <= 0 || s.P99Ms < s.P50Ms || s.MaxMs < s.P99Ms || s.Calls != 3 || s.CallP99Ms > s.MaxMs ||
			s.FinalizerP50Ms <= 0 || s.FinalizerP99Ms > s.MaxMs {
			t.Errorf("single objects, %s: %+v", s.System, s)
		}
	}
	var decoded report
	data, err := os.ReadFile(filepath.Join(opts.Out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &decoded); err != nil || len(decoded.Phases) != len(rep.Phases) || len(decoded.Single) != len(rep.Single) {
		t.Errorf("results.json: %v, %d phases, %d single-object results", err, len(decoded.Phases), len(decoded.Single))
	}
	if md, err := os.ReadFile(filepath.Join(opts.Out, "results.md")); err != nil || !strings.Contains(string(md), "Single objects") {
		t.Errorf("results.md: %v, no single-object table in:\n%s", err, md)
	}
}

func TestIdleWindowDefaultsToAMinuteAtScaleAndStaysAsGiven(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"-n", "1000"}, 5 * time.Second},
		{[]string{"-n", "10000"}, 60 * time.Second},
		{[]string{"-n", "10000", "-idle", "0s"}, 0},
		{[]string{"-n", "20", "-idle", "90s"}, 90 * time.Second},
	} {
		opts, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if opts.Idle != tc.want {
			t.Errorf("%v: idle %v, want %v", tc.args, opts.Idle, tc.want)
		}
	}
}

func TestSystemsFlagChoosesWhatIsMeasured(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		want    []string
		wantErr bool
	}{
		{nil, []string{systemRaw, systemGateway}, false},
		{[]string{"-systems", "gateway"}, []string{systemGateway}, false},
		{[]string{"-systems", "gateway,raw"}, []string{systemGateway, systemRaw}, false},
		{[]string{"-systems", "kopf"}, nil, true},
		{[]string{"-systems", ""}, nil, true},
		{[]string{"-systems", "raw,raw"}, nil, true},
		{[]string{"-warm-up", "-1"}, []string{systemRaw, systemGateway}, true},
		{[]string{"-repeat", "0"}, []string{systemRaw, systemGateway}, true},
	} {
		opts, err := parseFlags(tt.args, io.Discard)
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: err %v, want error %v", tt.args, err, tt.wantErr)
			continue
		}
		if err == nil && !slices.Equal(opts.Systems, tt.want) {
			t.Errorf("%v: systems %v, want %v", tt.args, opts.Systems, tt.want)
		}
	}
}

func TestRatiosArePairedByRoundAndTheirMedianReported(t *testing.T) {
	phase := func(sys string, round int, perSecond float64) phaseResult {
		return phaseResult{System: sys, Workload: workloadFast, Mode: modeBacklog, Phase: evCreate, Round: round, ObjectsPerSecond: perSecond}
	}
	for _, tc := range []struct {
		name   string
		phases []phaseResult
		ratios []float64
		median float64
	}{
		{"one round", []phaseResult{phase(systemRaw, 1, 100), phase(systemGateway, 1, 90)}, []float64{0.9}, 0.9},
		{"each round against its own raw run, the gateway first in round 2", []phaseResult{
			phase(systemRaw, 1, 100), phase(systemGateway, 1, 50),
			phase(systemGateway, 2, 90), phase(systemRaw, 2, 90),
			phase(systemRaw, 3, 200), phase(systemGateway, 3, 190),
		}, []float64{0.5, 1, 0.95}, 0.95},
		{"an even count: the middle two's mean", []phaseResult{
			phase(systemRaw, 1, 100), phase(systemGateway, 1, 80),
			phase(systemRaw, 2, 100), phase(systemGateway, 2, 90),
		}, []float64{0.8, 0.9}, 0.85},
		{"a round without its raw run has no ratio", []phaseResult{
			phase(systemRaw, 1, 100), phase(systemGateway, 1, 90), phase(systemGateway, 2, 10),
		}, []float64{0.9}, 0.9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &report{Phases: tc.phases}
			rep.computeRatios()
			if len(rep.Medians) != 1 {
				t.Fatalf("medians %+v, want one phase", rep.Medians)
			}
			m := rep.Medians[0]
			if len(m.Rounds) != len(m.Ratios) {
				t.Errorf("rounds %v for ratios %v", m.Rounds, m.Ratios)
			}
			if len(m.Ratios) != len(tc.ratios) || math.Abs(m.Median-tc.median) > 1e-9 {
				t.Fatalf("ratios %v median %.3f, want %v median %.3f", m.Ratios, m.Median, tc.ratios, tc.median)
			}
			for i := range tc.ratios {
				if math.Abs(m.Ratios[i]-tc.ratios[i]) > 1e-9 {
					t.Errorf("round %d: ratio %.3f, want %.3f", i+1, m.Ratios[i], tc.ratios[i])
				}
			}
		})
	}
}

func TestSystemsTakeTurnsGoingFirst(t *testing.T) {
	systems := []string{systemRaw, systemGateway}
	for round, want := range map[int][]string{1: systems, 2: {systemGateway, systemRaw}, 3: systems} {
		if got := roundOrder(systems, round); !slices.Equal(got, want) {
			t.Errorf("round %d: %v, want %v", round, got, want)
		}
	}
	if !slices.Equal(systems, []string{systemRaw, systemGateway}) {
		t.Errorf("the flag's order was changed: %v", systems)
	}
}

func TestMedianTableNamesTheRoundsItIsOver(t *testing.T) {
	rep := &report{Phases: []phaseResult{
		{System: systemRaw, Workload: workloadFast, Mode: modeBacklog, Phase: evCreate, Round: 1, ObjectsPerSecond: 100},
		{System: systemGateway, Workload: workloadFast, Mode: modeBacklog, Phase: evCreate, Round: 1, ObjectsPerSecond: 90},
		// Cut short: round 2's gateway run, first in that round, has no raw run to pair with.
		{System: systemGateway, Workload: workloadFast, Mode: modeBacklog, Phase: evCreate, Round: 2, ObjectsPerSecond: 80},
	}}
	rep.computeRatios()
	md := rep.markdown()
	if want := "| fast | backlog | create | 0.90 | 1 | 1: 0.90 |"; !strings.Contains(md, want) {
		t.Errorf("no row %q in:\n%s", want, md)
	}
	if !strings.Contains(md, "| gateway (round 2) |") {
		t.Errorf("round 2's run not named in:\n%s", md)
	}
}

func TestRunsOfLaterRoundsHaveNamespacesOfTheirOwn(t *testing.T) {
	for _, tc := range []struct {
		r    run
		want string
	}{
		{run{System: systemGateway, Workload: workloadFast, Mode: modeBacklog, Round: 1}, "gateway-fast-backlog"},
		{run{System: systemGateway, Workload: workloadFast, Mode: modeBacklog, Round: 2}, "gateway-fast-backlog-r2"},
		{run{System: systemRaw, Workload: workloadHandler, Mode: modeStream, Round: 10}, "raw-handler-stream-r10"},
	} {
		if got := tc.r.namespace(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestPhasesWithCPUSpentOutsideTheRunAreFlagged(t *testing.T) {
	rep := &report{Phases: []phaseResult{
		// 0.5 ms per object at 100 objects/s: 5 % of a core, the kernel's own.
		{System: systemRaw, Workload: workloadFast, Mode: modeBacklog, Phase: evCreate, Round: 1, ObjectsPerSecond: 100, OtherCPUMsPerObject: 0.5},
		// 2 ms per object at 100 objects/s: 20 % of a core.
		{System: systemGateway, Workload: workloadFast, Mode: modeBacklog, Phase: evUpdate, Round: 2, ObjectsPerSecond: 100, OtherCPUMsPerObject: 2},
	}}
	got := rep.interfered()
	if len(got) != 1 || !strings.HasPrefix(got[0], "gateway fast backlog update round 2 (20 %)") {
		t.Errorf("interfered phases %q, want the gateway's update alone", got)
	}
	if md := rep.markdown(); !strings.Contains(md, "**Interference**: in gateway fast backlog update round 2 (20 %)") {
		t.Errorf("no interference note in:\n%s", md)
	}
	rep.Phases = rep.Phases[:1]
	if md := rep.markdown(); strings.Contains(md, "Interference") {
		t.Errorf("an interference note for a quiet run:\n%s", md)
	}
}

func TestSpeedProbe(t *testing.T) {
	t.Run("its clock is the thread's: not the wall's, not the process's", func(t *testing.T) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		before, err := threadCPU()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // asleep: the wall clock moves, this thread's does not
		spun := make(chan struct{})
		go func() { // another thread busy: the process's clock moves, this thread's does not
			defer close(spun)
			for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
			}
		}()
		<-spun
		after, err := threadCPU()
		if err != nil {
			t.Fatal(err)
		}
		if d := after - before; d < 0 || d > 20*time.Millisecond {
			t.Errorf("the thread's CPU clock moved %s over 50 ms asleep and 50 ms of another thread's spinning", d)
		}
	})
	t.Run("it counts its units and their thread CPU", func(t *testing.T) {
		p := newSpeedProbe()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.run(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for p.snapshot().Units < 3 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // polling for the condition, with a deadline
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the probe did not stop within 10 s of its context's end")
		}
		got := p.snapshot()
		if got.Units < 3 {
			t.Fatalf("%d units in 10 s, want 3 or more (one per %s)", got.Units, probeEvery)
		}
		// A unit hashes 256 KiB: far more than a microsecond, far less
		// than the probe's period.
		if us := got.microsPerUnit(); us < 1 || us > float64(probeEvery.Microseconds()) {
			t.Errorf("%.1f µs of thread CPU per unit, want between 1 µs and %s", us, probeEvery)
		}
	})
	t.Run("no units read as 0, not NaN", func(t *testing.T) {
		if got := (probeTotals{}).microsPerUnit(); got != 0 {
			t.Errorf("%v µs per unit", got)
		}
	})
	t.Run("a harness without a probe reads zero", func(t *testing.T) {
		var nilProbe *speedProbe
		if got := nilProbe.snapshot(); got != (probeTotals{}) {
			t.Errorf("%+v", got)
		}
	})
}

func TestReportSaysWhenTheBaselineWatchedTheChildren(t *testing.T) {
	for _, encoding := range append([]string{""}, rawWatchEncodings...) {
		args := []string{"-n", "20"}
		if encoding != "" {
			args = append(args, "-raw-watches-children", encoding)
		}
		opts, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		rep := &report{RawWatchesChildren: opts.RawWatchesChildren}
		md := rep.markdown()
		if got := strings.Contains(md, "-raw-watches-children"); got != (encoding != "") || (got && !strings.Contains(md, "in "+encoding+" ")) {
			t.Errorf("%q given: report says %v", encoding, got)
		}
	}
	if _, err := parseFlags([]string{"-raw-watches-children", "yaml"}, io.Discard); err == nil {
		t.Error("-raw-watches-children yaml accepted")
	}
}
