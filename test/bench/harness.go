package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	modeBacklog     = "backlog"
	modeStream      = "stream"
	workloadFast    = "fast"
	workloadHandler = "handler"
	systemRaw       = "raw"
	systemGateway   = "gateway"
)

// harness drives the runs with its own clients, whose requests it counts
// so they can be taken out of the API server's counters.
type harness struct {
	opts    options
	log     *slog.Logger
	admin   *rest.Config
	counter *countingTransport
	dyn     dynamic.Interface
	typed   kubernetes.Interface
	// plane are the control plane's processes (API server, etcd, garbage
	// collector): what a system costs them is throughput lost on a
	// machine they share.
	plane map[string]int
	probe *speedProbe
}

func newHarness(ctx context.Context, admin *rest.Config, opts options, log *slog.Logger) (*harness, error) {
	if err := installCRD(ctx, admin); err != nil {
		return nil, err
	}
	h := &harness{opts: opts, log: log, admin: admin, counter: &countingTransport{counts: requestCounts{}}}
	cfg := rest.CopyConfig(admin)
	cfg.QPS, cfg.Burst, cfg.UserAgent = 5000, 10000, "bench-workload" // as fast as the client allows
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { h.counter.next = rt; return h.counter })
	var err error
	if h.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, err
	}
	proto := rest.CopyConfig(cfg)
	proto.ContentType = "application/vnd.kubernetes.protobuf"
	if h.typed, err = kubernetes.NewForConfig(proto); err != nil {
		return nil, err
	}
	return h, nil
}

// runAll runs every mode, workload and system, each on a control plane of
// its own, and reports as it goes.
func runAll(ctx context.Context, opts options, e env, clusterDir string, log *slog.Logger) (*report, error) {
	rep := &report{N: opts.N, Started: time.Now().UTC(), WarmUp: opts.WarmUp, QuietLimit: opts.QuietLimit,
		RawWatchesChildren: opts.RawWatchesChildren}
	// The warm-up's tuning is the fast workload's, measured or not.
	fast := tuning{Workers: opts.Workers, QPS: opts.QPS, Burst: opts.Burst, GOMAXPROCS: opts.MaxProcs}
	tunings := map[string]tuning{workloadFast: fast}
	for _, wl := range opts.Workloads {
		tune := fast
		if wl == workloadHandler {
			tune.Workers, tune.Sleep = opts.SlowWork, opts.Sleep
		}
		tunings[wl] = tune
		rep.Tuning = append(rep.Tuning, namedTuning{Workload: wl, tuning: tune})
	}
	// Rounds, then modes outside, so that a run cut short has measured
	// every workload.
	for round := 1; round <= opts.Repeat; round++ {
		for _, mode := range opts.Modes {
			for _, wl := range opts.Workloads {
				for _, sysName := range roundOrder(opts.Systems, round) {
					// Steady state and single objects once per system: the
					// first workload and mode of the first round.
					first := wl == opts.Workloads[0] && mode == opts.Modes[0] && round == 1
					r := run{System: sysName, Workload: wl, Mode: mode, Round: round}
					if err := runFresh(ctx, opts, e, filepath.Join(clusterDir, r.namespace()), &r, tunings, first, rep, log); err != nil {
						return nil, fmt.Errorf("%s %s %s round %d: %w", sysName, wl, mode, round, err)
					}
					// What is measured so far survives a run cut short.
					rep.computeRatios()
					if err := rep.write(opts.Out); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	rep.computeRatios()
	rep.Finished = time.Now().UTC()
	return rep, nil
}

// runFresh runs r on a control plane of its own, started in dir and warmed
// up first: sharing one, a run started on the leftovers of the runs before
// it (their etcd history, kube-apiserver's heap), which no two systems
// shared alike (docs/performance.md). The etcd data goes after the run
// (hundreds of MB at N=10 000); the control plane's logs stay.
// first: the run that also measures the steady state and single objects.
func runFresh(ctx context.Context, opts options, e env, dir string, r *run, tunings map[string]tuning, first bool, rep *report, log *slog.Logger) (err error) {
	log.Info("starting the cluster", "dir", dir)
	cluster, err := startCluster(ctx, dir, opts.Profile, log)
	if err != nil {
		return errors.Join(err, os.RemoveAll(filepath.Join(dir, "etcd")))
	}
	defer func() {
		if stopErr := cluster.Stop(); stopErr != nil {
			// A component left running would share the CPU with the next
			// run; its data stays while it may still use it.
			err = errors.Join(err, fmt.Errorf("stop the control plane in %s: %w", dir, stopErr))
			return
		}
		err = errors.Join(err, os.RemoveAll(filepath.Join(dir, "etcd")))
	}()
	h, err := newHarness(ctx, cluster.RESTConfig(), opts, log)
	if err != nil {
		return err
	}
	h.plane = cluster.PIDs()
	h.probe = e.probe
	e.kubeconfig = cluster.Kubeconfig()
	warm := time.Now()
	// The same warm-up for every run, whatever its workload; its raw
	// program's log with the control plane's.
	warmEnv := e
	warmEnv.outDir = filepath.Join(dir, "logs")
	if err := h.warmUp(ctx, warmEnv, tunings[workloadFast]); err != nil {
		return err
	}
	r.WarmUpSeconds = time.Since(warm).Seconds()
	r.APIServerPID = h.plane["kube-apiserver"]
	return h.runOne(ctx, newSystem(r.System, e), r, tunings[r.Workload], first, rep)
}

// roundOrder is the systems' order in a round: as given in odd rounds,
// reversed in even ones, so that over an even number of rounds a machine
// getting faster or slower favours neither system.
func roundOrder(systems []string, round int) []string {
	if round%2 == 1 {
		return systems
	}
	out := slices.Clone(systems)
	slices.Reverse(out)
	return out
}

func newSystem(name string, e env) system {
	if name == systemGateway {
		return &gatewaySystem{env: e}
	}
	return &rawSystem{env: e}
}

type run struct {
	System, Workload, Mode string
	Round                  int // from 1
	// Of its control plane: the API server's process and the warm-up's length.
	APIServerPID  int
	WarmUpSeconds float64
	// Quiet: the wait for a quiet machine before the system started.
	Quiet quietWait
}

// namespace names the run's namespace, cluster and logs: round 1 without
// its number.
func (r run) namespace() string {
	ns := r.System + "-" + r.Workload + "-" + r.Mode
	if r.Round > 1 {
		ns += fmt.Sprintf("-r%d", r.Round)
	}
	return ns
}

// sample is what is read at a phase's start and end.
type sample struct {
	at time.Time
	apiServerCounts
	own      requestCounts
	usage    procUsage
	handler  procUsage          // the gateway's handler process (zero for raw)
	plane    map[string]float64 // each control-plane process's CPU seconds so far
	machine  machineUsage
	harness  procUsage // this process: the tracker and the workload's client
	received stats
	probe    probeTotals
}

func (h *harness) sample(ctx context.Context, sys system, started bool) (sample, error) {
	s := sample{at: time.Now(), own: h.counter.snapshot(), probe: h.probe.snapshot()}
	var err error
	if s.apiServerCounts, err = scrapeAPIServer(ctx, h.admin); err != nil {
		return s, err
	}
	if s.machine, err = readMachineUsage(); err != nil {
		return s, err
	}
	if s.harness, err = readUsage(os.Getpid()); err != nil {
		return s, fmt.Errorf("harness usage: %w", err)
	}
	// The gateway's handler runs before the system starts (prepare).
	if s.handler, err = sys.handlerUsage(); err != nil {
		return s, err
	}
	s.plane = make(map[string]float64, len(h.plane))
	for name, pid := range h.plane {
		u, err := readUsage(pid)
		if err != nil {
			return s, fmt.Errorf("control plane: %s: %w", name, err)
		}
		s.plane[name] = u.CPUSeconds
	}
	if started {
		if s.usage, err = sys.usage(); err != nil {
			return s, err
		}
		if s.received, err = sys.stats(ctx); err != nil {
			return s, err
		}
	}
	return s, nil
}

// trackedWorkload is a workload of n objects in namespace ns, created,
// with its tracker started; the caller stops the tracker.
func (h *harness) trackedWorkload(ctx context.Context, ns string, n int) (*workload, error) {
	if err := createNamespace(ctx, h.typed, ns); err != nil {
		return nil, err
	}
	w := &workload{dyn: h.dyn, typed: h.typed, ns: ns, n: n}
	var err error
	if w.track, err = startTracker(ctx, w); err != nil {
		return nil, err
	}
	return w, nil
}

// runOne runs create (backlog or stream), update and delete against one
// system in a namespace of its own.
func (h *harness) runOne(ctx context.Context, sys system, r *run, tune tuning, first bool, rep *report) error {
	ns := r.namespace()
	w, err := h.trackedWorkload(ctx, ns, h.opts.N)
	if err != nil {
		return err
	}
	defer w.track.stop()
	h.log.Info("run", "system", r.System, "workload", r.Workload, "mode", r.Mode, "n", h.opts.N)
	defer sys.stop()
	if err := sys.prepare(ctx, ns, tune); err != nil {
		return err
	}
	// Before the backlog is created: its objects' latency runs from their
	// creation, and the wait is not the system's.
	if h.opts.QuietLimit > 0 {
		syncDisks()
		if r.Quiet, err = waitQuiet(ctx, readMachineUsage, quietWindow, h.opts.QuietLimit); err != nil {
			return fmt.Errorf("wait for a quiet machine: %w", err)
		}
		if !r.Quiet.Quiet {
			h.log.Warn("the machine stayed busy; starting anyway", "waited", r.Quiet.Seconds, "cores", r.Quiet.Cores)
		}
	}
	if r.Mode == modeBacklog {
		if err := w.createAll(ctx); err != nil {
			return err
		}
	}
	before, err := h.sample(ctx, sys, false)
	if err != nil {
		return err
	}
	if err := sys.start(ctx, ns, tune); err != nil {
		return err
	}
	if h.opts.Profile {
		// What the system costs the API server, in the same chunks.
		prof, err := startProfiler(apiServerFetcher(h.typed.CoreV1().RESTClient()), filepath.Join(h.opts.Out, "logs", "profiles", ns, "kube-apiserver"))
		if err != nil {
			return err
		}
		defer func() {
			if err := prof.stop(); err != nil {
				h.log.Warn("no CPU profile of kube-apiserver", "error", err)
			}
		}()
	}
	if r.Mode == modeStream {
		before.at = time.Now()
		if err := w.createAll(ctx); err != nil {
			return err
		}
	}
	return h.runPhases(ctx, sys, r, w, before, first, rep)
}

// childrenCollected waits until the garbage collector has deleted every
// child in namespace ns.
func (h *harness) childrenCollected(ctx context.Context, ns string, w *workload) error {
	_, err := await(ctx, h.opts.Timeout, ns+" children collected", func() (bool, string) {
		left := w.track.childrenLeft()
		return left == 0, fmt.Sprintf("%d children left", left)
	})
	return err
}

// runPhases measures create (already under way), update and delete.
func (h *harness) runPhases(ctx context.Context, sys system, r *run, w *workload, before sample, first bool, rep *report) error {
	phases := []struct {
		name  string
		size  int64
		write func(context.Context) error
	}{
		{evCreate, 1, nil},
		{evUpdate, 3, func(ctx context.Context) error { return w.resizeAll(ctx, 3) }},
		{evDelete, 0, w.deleteAll},
	}
	var err error
	for _, p := range phases {
		if p.write != nil {
			if before, err = h.sample(ctx, sys, true); err != nil {
				return err
			}
			if err := p.write(ctx); err != nil {
				return err
			}
		}
		done, err := await(ctx, h.opts.Timeout, r.namespace()+" "+p.name, func() (bool, string) {
			return w.track.converged(w.n, p.size)
		})
		if err != nil {
			return err
		}
		if p.size == 0 {
			// The collector's deletes of the children are part of the
			// phase's requests: wait for them before the quiet window.
			if err := h.childrenCollected(ctx, r.namespace(), w); err != nil {
				return err
			}
		}
		after, err := h.settled(ctx, sys)
		if err != nil {
			return err
		}
		h.log.Info("phase done", "system", r.System, "phase", p.name, "converged", done.Sub(before.at).Round(time.Millisecond),
			"settled", time.Since(done).Round(time.Millisecond))
		after.at = done
		if pd, ok := sys.(interface{ phaseDone(string) }); ok {
			pd.phaseDone(p.name)
		}
		res := measure(*r, p.name, h.opts.N, before, after, w)
		if p.size != 0 {
			// After the phase's figures: the harness's list is not in them.
			keep := filepath.Join(h.opts.Out, "logs", "objects", r.namespace()+"-"+p.name)
			if res.ServedBytes, err = servedBytes(ctx, h.dyn, r.namespace(), keep); err != nil {
				return err
			}
		}
		rep.Phases = append(rep.Phases, res)
		// Both systems idle, so that the later phases of this pair of runs
		// follow the same history.
		if first && p.name == evCreate && h.opts.Idle > 0 {
			if err := h.steady(ctx, sys, r, rep); err != nil {
				return err
			}
		}
		// Single objects once per system, on the converged backlog, after
		// the idle window and outside every phase's figures.
		if first && p.name == evCreate && h.opts.Single > 0 {
			if err := h.single(ctx, sys, r, w, rep); err != nil {
				return err
			}
		}
	}
	return nil
}

// settleQuiet is how long the API server must see no write to the bench's
// resources for a converged phase's work to count as finished. At
// convergence at most one trailing write per worker is left (the state
// written after the status), each done in milliseconds on the unloading API
// server, so a gap this long means they are in.
const settleQuiet = 300 * time.Millisecond

// settled samples once the system's trailing writes are in: what users see
// (status, children) converges before the state annotation that marks the
// change handled is written, and a phase's writes include it. The phase's
// time is still taken at convergence.
func (h *harness) settled(ctx context.Context, sys system) (sample, error) {
	s, err := h.sample(ctx, sys, true)
	for deadline := time.Now().Add(h.opts.Timeout); err == nil && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(settleQuiet):
		}
		var next sample
		if next, err = h.sample(ctx, sys, true); err == nil {
			quiet := writes(next.api.minus(s.api).minus(next.own.minus(s.own))) == 0
			s = next
			if quiet {
				break
			}
		}
	}
	return s, err
}

// steady watches the converged system for opts.Idle.
func (h *harness) steady(ctx context.Context, sys system, r *run, rep *report) error {
	h.log.Info("steady state", "system", r.System, "for", h.opts.Idle)
	before, err := h.sample(ctx, sys, true)
	if err != nil {
		return err
	}
	select { // the idle window is what is measured
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(h.opts.Idle):
	}
	after, err := h.sample(ctx, sys, true)
	if err != nil {
		return err
	}
	api := after.api.minus(before.api).minus(after.own.minus(before.own))
	rep.Steady = append(rep.Steady, steadyResult{
		System: r.System, Workload: r.Workload, Mode: r.Mode, N: h.opts.N,
		Seconds:    after.at.Sub(before.at).Seconds(),
		CPUSeconds: after.usage.CPUSeconds - before.usage.CPUSeconds,
		RSSMiB:     after.usage.RSSMiB, PeakRSSMiB: after.usage.PeakRSSMiB,
		Requests: api, Writes: writes(api),
		ContextSwitches: after.usage.ContextSwitches - before.usage.ContextSwitches,
	})
	return nil
}
