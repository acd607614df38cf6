package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type report struct {
	N        int           `json:"n"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Tuning   []namedTuning `json:"tuning"`
	// WarmUp: objects the raw program handled on each run's control plane
	// before anything was measured (each phase says how long it took).
	WarmUp int `json:"warmUp"`
	// QuietLimit: the longest wait for a quiet machine before a run (0: none).
	QuietLimit time.Duration `json:"quietLimitNs"`
	// RawWatchesChildren: the raw baseline kept a watch of the children
	// too (-raw-watches-children, an experiment).
	RawWatchesChildren string        `json:"rawWatchesChildren,omitempty"`
	Phases             []phaseResult `json:"phases"`
	// Medians: each phase's ratio to raw over the rounds (-repeat).
	Medians []medianRatio  `json:"medians,omitempty"`
	Steady  []steadyResult `json:"steady,omitempty"`
	Single  []singleResult `json:"single,omitempty"`
}

type namedTuning struct {
	Workload string `json:"workload"`
	tuning
}

// phaseResult is one phase of one run. Requests are kube-apiserver's
// counts for the bench resources (memcacheds, deployments, events) minus
// the harness's own; they include the garbage collector's (it deletes the
// children in the delete phase).
type phaseResult struct {
	System   string `json:"system"`
	Workload string `json:"workload"`
	Mode     string `json:"mode"`
	Round    int    `json:"round"` // from 1 (-repeat)
	// APIServerPID names the run's control plane (one per run),
	// WarmUpSeconds is how long its warm-up took.
	APIServerPID  int     `json:"apiServerPID"`
	WarmUpSeconds float64 `json:"warmUpSeconds"`
	// QuietWait: how long the machine took to be quiet before the system
	// started, and how busy it was then (harness.go, waitQuiet).
	QuietWait          quietWait     `json:"quietWait"`
	Phase              string        `json:"phase"`
	N                  int           `json:"n"`
	Seconds            float64       `json:"seconds"`
	ObjectsPerSecond   float64       `json:"objectsPerSecond"`
	RatioToRaw         float64       `json:"ratioToRaw,omitempty"`
	CallbacksPerObject float64       `json:"callbacksPerObject"`
	Requests           requestCounts `json:"requests"`
	WritesPerObject    float64       `json:"writesPerObject"`
	LatencyP50Ms       float64       `json:"latencyP50Ms"`
	LatencyP99Ms       float64       `json:"latencyP99Ms"`
	CPUSeconds         float64       `json:"cpuSeconds"`
	CPUMsPerObject     float64       `json:"cpuMsPerObject"`
	// PlaneCPUMsPerObject is the control plane's CPU (API server, etcd,
	// garbage collector) over the phase, per object.
	PlaneCPUMsPerObject float64 `json:"planeCPUMsPerObject"`
	// PlaneCPUMsPerObjectBy splits it by process (etcd, kube-apiserver,
	// kube-controller-manager): which one a system's requests cost.
	PlaneCPUMsPerObjectBy map[string]float64 `json:"planeCPUMsPerObjectBy"`
	PeakRSSMiB            float64            `json:"peakRSSMiB"`
	// MachineCPUMsPerObject is every process's CPU over the phase, per
	// object: the system's, its handler's, the control plane's and the
	// harness's. ContextSwitchesPerObject are the system's threads',
	// MachineContextSwitchesPerObject every process's.
	MachineCPUMsPerObject float64 `json:"machineCPUMsPerObject"`
	// HandlerCPUMsPerObject and HandlerContextSwitchesPerObject are the
	// gateway's handler process's (0 for raw, which does that work in its
	// own process).
	HandlerCPUMsPerObject           float64 `json:"handlerCPUMsPerObject"`
	HandlerContextSwitchesPerObject float64 `json:"handlerContextSwitchesPerObject"`
	// OtherCPUMsPerObject is the machine's CPU that none of the above
	// spent: the kernel's own threads, and whatever else ran on the
	// machine. Usually 4–6 % of a core here; much more means something
	// else competed with the phase (see interfered).
	OtherCPUMsPerObject float64 `json:"otherCPUMsPerObject"`
	// HarnessCPUMsPerObject is the harness process's: its watches of the
	// namespace, the workload's requests and its own sampling (metrics,
	// /proc, the recorder's stats), about alike for both systems.
	HarnessCPUMsPerObject           float64 `json:"harnessCPUMsPerObject"`
	ContextSwitchesPerObject        float64 `json:"contextSwitchesPerObject"`
	MachineContextSwitchesPerObject float64 `json:"machineContextSwitchesPerObject"`
	// ProbeMicrosPerUnit is the mean CPU time the harness's speed probe
	// took for its fixed computation over the phase (speedProbe): a check
	// for gross slowdowns of the host, 0 when no unit ran.
	ProbeMicrosPerUnit float64 `json:"probeMicrosPerUnit"`
	// StealCPUMsPerObject is the time the hypervisor accounted as given to
	// other machines over the phase, per object (/proc/stat steal; 0 where
	// the hypervisor does not report it, as on the machine the figures in
	// docs/performance.md come from).
	StealCPUMsPerObject float64 `json:"stealCPUMsPerObject"`
	// EtcdRequests are kube-apiserver's requests to etcd per object for
	// the bench resources over the phase, the workload's own writes'
	// included (in backlog create they came before the phase): a write
	// tried again on a stale cached copy shows as one more get or update.
	EtcdRequests requestCounts `json:"etcdRequests"`
	// WatchEvents are kube-apiserver's watch events per object over the
	// phase, sent to every watcher ("events deployments"), the bytes it
	// encoded for them and in how many encodings ("bytes deployments",
	// "encodings deployments"; see apiServerCounts.watch).
	WatchEvents requestCounts `json:"watchEvents"`
	// ServedBytes is the mean JSON size of a parent and a child as the API
	// server serves them at the end of the phase, by resource (none after
	// delete). Custom resources are stored as that JSON; Deployments as
	// protobuf, somewhat smaller.
	ServedBytes map[string]float64 `json:"servedJSONBytes,omitempty"`
}

type steadyResult struct {
	System     string        `json:"system"`
	Workload   string        `json:"workload"`
	Mode       string        `json:"mode"`
	N          int           `json:"n"`
	Seconds    float64       `json:"seconds"`
	CPUSeconds float64       `json:"cpuSeconds"`
	RSSMiB     float64       `json:"rssMiB"`
	PeakRSSMiB float64       `json:"peakRSSMiB"`
	Requests   requestCounts `json:"requests"`
	Writes     float64       `json:"writes"`
	// ContextSwitches of the system's threads over the window: its
	// wake-ups while there is nothing to do.
	ContextSwitches float64 `json:"contextSwitches"`
}

// writes sums the writing verbs.
func writes(c requestCounts) float64 {
	total := 0.0
	for k, v := range c {
		verb, _, _ := strings.Cut(k, " ")
		switch verb {
		case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
			total += v
		}
	}
	return total
}

func measure(r run, phase string, n int, before, after sample, w *workload) phaseResult {
	secs := after.at.Sub(before.at).Seconds()
	api := after.api.minus(before.api).minus(after.own.minus(before.own))
	cpu := after.usage.CPUSeconds - before.usage.CPUSeconds
	calls := after.received.Calls[phase] - before.received.Calls[phase]
	var lat []float64
	w.mu.Lock()
	for name, sent := range w.sent[phase] {
		if got, ok := after.received.First[phase][name]; ok {
			lat = append(lat, float64(got.Sub(sent).Microseconds())/1000)
		}
	}
	w.mu.Unlock()
	slices.Sort(lat)
	planeBy, planeTotal := make(map[string]float64, len(after.plane)), 0.0
	for name, secs := range after.plane {
		planeBy[name] = (secs - before.plane[name]) * 1000 / float64(n)
		planeTotal += secs - before.plane[name]
	}
	handlerCPU := after.handler.CPUSeconds - before.handler.CPUSeconds
	harnessCPU := after.harness.CPUSeconds - before.harness.CPUSeconds
	machineCPU := after.machine.BusySeconds - before.machine.BusySeconds
	return phaseResult{
		System: r.System, Workload: r.Workload, Mode: r.Mode, Round: r.Round, Phase: phase, N: n,
		APIServerPID: r.APIServerPID, WarmUpSeconds: r.WarmUpSeconds, QuietWait: r.Quiet,
		Seconds: secs, ObjectsPerSecond: float64(n) / secs,
		CallbacksPerObject: float64(calls) / float64(n),
		Requests:           api.per(n), WritesPerObject: writes(api) / float64(n),
		EtcdRequests: after.etcd.minus(before.etcd).per(n), WatchEvents: after.watch.minus(before.watch).per(n),
		LatencyP50Ms: percentile(lat, 0.50), LatencyP99Ms: percentile(lat, 0.99),
		CPUSeconds: cpu, CPUMsPerObject: cpu * 1000 / float64(n),
		PlaneCPUMsPerObject: planeTotal * 1000 / float64(n), PlaneCPUMsPerObjectBy: planeBy,
		PeakRSSMiB:                      after.usage.PeakRSSMiB,
		MachineCPUMsPerObject:           machineCPU * 1000 / float64(n),
		HandlerCPUMsPerObject:           handlerCPU * 1000 / float64(n),
		HandlerContextSwitchesPerObject: (after.handler.ContextSwitches - before.handler.ContextSwitches) / float64(n),
		HarnessCPUMsPerObject:           harnessCPU * 1000 / float64(n),
		OtherCPUMsPerObject:             (machineCPU - planeTotal - cpu - handlerCPU - harnessCPU) * 1000 / float64(n),
		ContextSwitchesPerObject:        (after.usage.ContextSwitches - before.usage.ContextSwitches) / float64(n),
		MachineContextSwitchesPerObject: (after.machine.ContextSwitches - before.machine.ContextSwitches) / float64(n),
		ProbeMicrosPerUnit:              after.probe.minus(before.probe).microsPerUnit(),
		StealCPUMsPerObject:             (after.machine.StealSeconds - before.machine.StealSeconds) * 1000 / float64(n),
	}
}

// percentile of sorted values, nearest rank; NaN-free: 0 when empty.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// computeRatios sets each phase's throughput as a ratio to the raw
// program's in the same workload, mode, phase and round, and the median
// of each phase's ratios over the rounds.
func (rep *report) computeRatios() {
	raw := map[string]float64{}
	key := func(p phaseResult) string { return fmt.Sprintf("%s/%s/%s/%d", p.Workload, p.Mode, p.Phase, p.Round) }
	for _, p := range rep.Phases {
		if p.System == systemRaw {
			raw[key(p)] = p.ObjectsPerSecond
		}
	}
	rep.Medians = nil
	for i, p := range rep.Phases {
		base := raw[key(p)]
		if base <= 0 {
			continue
		}
		rep.Phases[i].RatioToRaw = p.ObjectsPerSecond / base
		if p.System == systemRaw {
			continue
		}
		j := slices.IndexFunc(rep.Medians, func(m medianRatio) bool {
			return m.Workload == p.Workload && m.Mode == p.Mode && m.Phase == p.Phase
		})
		if j < 0 {
			rep.Medians = append(rep.Medians, medianRatio{Workload: p.Workload, Mode: p.Mode, Phase: p.Phase})
			j = len(rep.Medians) - 1
		}
		rep.Medians[j].Rounds = append(rep.Medians[j].Rounds, p.Round)
		rep.Medians[j].Ratios = append(rep.Medians[j].Ratios, rep.Phases[i].RatioToRaw)
	}
	for i := range rep.Medians {
		rep.Medians[i].Median = median(rep.Medians[i].Ratios)
	}
}

// rounds is the highest round measured.
func (rep *report) rounds() int {
	n := 0
	for _, p := range rep.Phases {
		n = max(n, p.Round)
	}
	return n
}

// medianRatio is a phase's throughput ratio to raw over the rounds.
type medianRatio struct {
	Workload string    `json:"workload"`
	Mode     string    `json:"mode"`
	Phase    string    `json:"phase"`
	Rounds   []int     `json:"rounds"` // with both systems measured
	Ratios   []float64 `json:"ratios"` // of those rounds
	Median   float64   `json:"median"`
}

// median of values (the mean of the middle two for an even count).
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(values))
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

func (rep *report) write(dir string) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(rep.markdown()), 0o644)
}

func (rep *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "N=%d, %s\n\n", rep.N, rep.Started.Format(time.RFC3339))
	for _, t := range rep.Tuning {
		fmt.Fprintf(&b, "- %s: %d workers, QPS %g, burst %d, handler work %s per call", t.Workload, t.Workers, t.QPS, t.Burst, t.Sleep)
		if t.GOMAXPROCS > 0 {
			fmt.Fprintf(&b, ", GOMAXPROCS=%d", t.GOMAXPROCS)
		}
		b.WriteString("\n")
	}
	b.WriteString("- each run on a control plane of its own")
	if rep.WarmUp > 0 {
		longest := 0.0
		for _, p := range rep.Phases {
			longest = max(longest, p.WarmUpSeconds)
		}
		fmt.Fprintf(&b, ", warmed up: %d objects created, updated and deleted by the raw program first (at most %.1f s)", rep.WarmUp, longest)
	}
	b.WriteString("\n")
	b.WriteString(quietLine(rep.QuietLimit, rep.Phases))
	if rep.RawWatchesChildren != "" {
		fmt.Fprintf(&b, "- experiment: the raw program also kept a watch and cache of the Deployments, as the gateway does, in %s (-raw-watches-children)\n", rep.RawWatchesChildren)
	}
	b.WriteString("\n| workload | mode | phase | system | s | objects/s | × raw | callbacks/obj | writes/obj | requests/obj | latency p50/p99 ms | CPU ms/obj | handler CPU ms/obj | control plane CPU ms/obj | machine CPU ms/obj | context switches/obj system / machine | peak RSS MiB | served JSON bytes parent / child |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range rep.Phases {
		ratio := "—"
		if p.System != systemRaw && p.RatioToRaw > 0 {
			ratio = fmt.Sprintf("%.2f", p.RatioToRaw)
		}
		handler := "—"
		if p.System != systemRaw {
			handler = fmt.Sprintf("%.2f", p.HandlerCPUMsPerObject)
		}
		served := "—"
		if p.ServedBytes != nil {
			served = fmt.Sprintf("%.0f / %.0f", p.ServedBytes[resource], p.ServedBytes["deployments"])
		}
		system := p.System
		if p.Round > 1 {
			system += fmt.Sprintf(" (round %d)", p.Round)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f | %.0f | %s | %.2f | %.2f | %s | %.0f / %.0f | %.2f | %s | %.2f | %.2f | %.1f / %.1f | %.0f | %s |\n",
			p.Workload, p.Mode, p.Phase, system, p.Seconds, p.ObjectsPerSecond, ratio, p.CallbacksPerObject,
			p.WritesPerObject, formatCounts(p.Requests), p.LatencyP50Ms, p.LatencyP99Ms, p.CPUMsPerObject, handler, p.PlaneCPUMsPerObject,
			p.MachineCPUMsPerObject, p.ContextSwitchesPerObject, p.MachineContextSwitchesPerObject, p.PeakRSSMiB, served)
	}
	if bad := rep.interfered(); len(bad) > 0 {
		fmt.Fprintf(&b, "\n**Interference**: in %s the machine spent more than %.0f %% of a core on processes outside the run (otherCPUMsPerObject in results.json; 4–6 %% is the kernel's own): their figures are suspect.\n",
			strings.Join(bad, ", "), interferenceShare*100)
	}
	if rep.rounds() > 1 && len(rep.Medians) > 0 {
		b.WriteString("\nThroughput as a ratio to raw, median over the rounds:\n\n| workload | mode | phase | × raw (median) | rounds | by round |\n|---|---|---|---|---|---|\n")
		for _, m := range rep.Medians {
			each := make([]string, len(m.Ratios))
			for i, r := range m.Ratios {
				each[i] = fmt.Sprintf("%d: %.2f", m.Rounds[i], r)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %d | %s |\n", m.Workload, m.Mode, m.Phase, m.Median, len(m.Ratios), strings.Join(each, ", "))
		}
	}
	if len(rep.Steady) > 0 {
		b.WriteString("\nSteady state (converged, idle):\n\n| system | N | s | CPU s | context switches | RSS MiB | peak RSS MiB | writes | requests |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range rep.Steady {
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f | %s |\n",
				s.System, s.N, s.Seconds, s.CPUSeconds, s.ContextSwitches, s.RSSMiB, s.PeakRSSMiB, s.Writes, formatCounts(s.Requests))
		}
	}
	if len(rep.Single) > 0 {
		b.WriteString("\nSingle objects on the idle, converged system (created one at a time; create request returned → status seen in a watch; finalizer: → the system's finalizer seen; call: → first call for the object):\n\n")
		b.WriteString("| workload | mode | system | backlog | objects | p50 ms | p99 ms | max ms | finalizer p50/p99 ms | call p50/p99 ms |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range rep.Single {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %.1f | %.1f | %.1f | %.1f / %.1f | %.1f / %.1f |\n",
				s.Workload, s.Mode, s.System, s.Backlog, s.Count, s.P50Ms, s.P99Ms, s.MaxMs, s.FinalizerP50Ms, s.FinalizerP99Ms, s.CallP50Ms, s.CallP99Ms)
		}
	}
	return b.String()
}

// formatCounts lists "VERB resource=value" sorted, values rounded.
func formatCounts(c requestCounts) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if c[k] >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, c[k]))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// interferenceShare of a core, spent by none of the run's processes over a
// phase, marks the phase as disturbed: a build, a test or another program
// on the machine takes CPU from whichever system runs then, and the
// ratio moves by as much.
const interferenceShare = 0.10

// interfered names the phases the machine spent more than
// interferenceShare of a core on outside the run.
func (rep *report) interfered() []string {
	var bad []string
	for _, p := range rep.Phases {
		if share := p.OtherCPUMsPerObject * p.ObjectsPerSecond / 1000; share > interferenceShare {
			bad = append(bad, fmt.Sprintf("%s %s %s %s round %d (%.0f %%)", p.System, p.Workload, p.Mode, p.Phase, p.Round, share*100))
		}
	}
	return bad
}
