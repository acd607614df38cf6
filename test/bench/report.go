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
	// WarmUp: objects the raw program handled before anything was
	// measured, and how long it took.
	WarmUp        int            `json:"warmUp"`
	WarmUpSeconds float64        `json:"warmUpSeconds"`
	Phases        []phaseResult  `json:"phases"`
	Steady        []steadyResult `json:"steady,omitempty"`
	Single        []singleResult `json:"single,omitempty"`
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
	System             string        `json:"system"`
	Workload           string        `json:"workload"`
	Mode               string        `json:"mode"`
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
	PeakRSSMiB          float64 `json:"peakRSSMiB"`
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
	perObject := requestCounts{}
	for k, v := range api {
		perObject[k] = v / float64(n)
	}
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
	return phaseResult{
		System: r.System, Workload: r.Workload, Mode: r.Mode, Phase: phase, N: n,
		Seconds: secs, ObjectsPerSecond: float64(n) / secs,
		CallbacksPerObject: float64(calls) / float64(n),
		Requests:           perObject, WritesPerObject: writes(api) / float64(n),
		LatencyP50Ms: percentile(lat, 0.50), LatencyP99Ms: percentile(lat, 0.99),
		CPUSeconds: cpu, CPUMsPerObject: cpu * 1000 / float64(n),
		PlaneCPUMsPerObject: (after.plane - before.plane) * 1000 / float64(n),
		PeakRSSMiB:          after.usage.PeakRSSMiB,
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
// program's in the same workload, mode and phase.
func (rep *report) computeRatios() {
	raw := map[string]float64{}
	key := func(p phaseResult) string { return p.Workload + "/" + p.Mode + "/" + p.Phase }
	for _, p := range rep.Phases {
		if p.System == systemRaw {
			raw[key(p)] = p.ObjectsPerSecond
		}
	}
	for i, p := range rep.Phases {
		if base := raw[key(p)]; base > 0 {
			rep.Phases[i].RatioToRaw = p.ObjectsPerSecond / base
		}
	}
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
		fmt.Fprintf(&b, "- %s: %d workers, QPS %g, burst %d, handler work %s per call\n", t.Workload, t.Workers, t.QPS, t.Burst, t.Sleep)
	}
	if rep.WarmUp > 0 {
		fmt.Fprintf(&b, "- warm-up: %d objects created, updated and deleted by the raw program before the runs (%.1f s)\n", rep.WarmUp, rep.WarmUpSeconds)
	}
	b.WriteString("\n| workload | mode | phase | system | s | objects/s | × raw | callbacks/obj | writes/obj | requests/obj | latency p50/p99 ms | CPU ms/obj | control plane CPU ms/obj | peak RSS MiB |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range rep.Phases {
		ratio := "—"
		if p.System != systemRaw && p.RatioToRaw > 0 {
			ratio = fmt.Sprintf("%.2f", p.RatioToRaw)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f | %.0f | %s | %.2f | %.2f | %s | %.0f / %.0f | %.2f | %.2f | %.0f |\n",
			p.Workload, p.Mode, p.Phase, p.System, p.Seconds, p.ObjectsPerSecond, ratio, p.CallbacksPerObject,
			p.WritesPerObject, formatCounts(p.Requests), p.LatencyP50Ms, p.LatencyP99Ms, p.CPUMsPerObject, p.PlaneCPUMsPerObject, p.PeakRSSMiB)
	}
	if len(rep.Steady) > 0 {
		b.WriteString("\nSteady state (converged, idle):\n\n| system | N | s | CPU s | RSS MiB | peak RSS MiB | writes | requests |\n|---|---|---|---|---|---|---|---|\n")
		for _, s := range rep.Steady {
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.0f | %.0f | %.0f | %s |\n",
				s.System, s.N, s.Seconds, s.CPUSeconds, s.RSSMiB, s.PeakRSSMiB, s.Writes, formatCounts(s.Requests))
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
