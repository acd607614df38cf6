// Command bench measures the gateway end to end against a raw client-go
// program making only the writes the gateway's guarantees need, on a local
// kube-apiserver + etcd + garbage collector (see docs/performance.md):
//
//	go run ./test/bench -n 1000 -out bench-out/
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the harness's flags.
type options struct {
	N         int
	Out       string
	Workers   int
	QPS       float64
	Burst     int
	Sleep     time.Duration // the handler-bound workload's work per call
	SlowWork  int           // workers of the handler-bound workload
	Idle      time.Duration
	Modes     []string
	Workloads []string
	Systems   []string
	Timeout   time.Duration
	Gateway   string // prebuilt gateway binary; empty: go build it
	Profile   bool
	Single    int // objects created one at a time for the single-object latency (0: skip)
	WarmUp    int // objects the raw program handles before anything is measured (0: none)
	// QuietLimit: longest wait for a quiet machine before a system starts (0: none).
	QuietLimit time.Duration
	// RawWatchesChildren: an experiment, the raw program also keeps a watch
	// and cache of the children, as the gateway does: "json" (as the
	// gateway's), "protobuf", or "" (none).
	RawWatchesChildren string
	Repeat             int // rounds of every run; ratios are reported per round and as the median
	MaxProcs           int // GOMAXPROCS of both systems (0: Go's default)
}

// runSubcommand runs this program as one of the processes a run measures
// besides the gateway: the raw program or the gateway's handler.
func runSubcommand(args []string) (code int, ok bool) {
	if len(args) < 2 {
		return 0, false
	}
	switch args[1] {
	case "raw":
		return rawMain(args[2:]), true
	case "handler":
		return handlerMain(args[2:]), true
	}
	return 0, false
}

func main() {
	if code, ok := runSubcommand(os.Args); ok {
		os.Exit(code)
	}
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rep, err := runBench(ctx, opts, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Print(rep.markdown())
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.N, "n", 1000, "objects per run")
	fs.StringVar(&o.Out, "out", "bench-out", "directory for results.json, results.md, logs and each run's control plane (its etcd data removed after the run)")
	fs.IntVar(&o.Workers, "workers", 32, "workers of each system in the fast workload")
	fs.Float64Var(&o.QPS, "qps", 500, "client QPS of each system")
	fs.IntVar(&o.Burst, "burst", 1000, "client burst of each system")
	fs.DurationVar(&o.Sleep, "handler-sleep", 50*time.Millisecond, "work per call in the handler-bound workload")
	fs.IntVar(&o.SlowWork, "handler-workers", 16, "workers of each system in the handler-bound workload")
	fs.DurationVar(&o.Idle, "idle", 0, "steady state: how long to watch each converged system idle (default: 60s from -n 10000 on, 5s below)")
	modes := fs.String("modes", "backlog,stream", "arrival modes")
	workloads := fs.String("workloads", "fast,handler", "workloads: fast (no work in the handler), handler (handler-sleep per call)")
	systems := fs.String("systems", "raw,gateway", "systems to measure, in this order (ratios need both)")
	fs.StringVar(&o.Gateway, "gateway-bin", "", "gateway binary to measure (default: go build ./cmd/gateway into -out)")
	fs.BoolVar(&o.Profile, "profile", false, "record each system's CPU profile (in 5 s chunks), its heap and (gateway) metrics at the end of each phase under -out/logs/profiles/")
	fs.IntVar(&o.Single, "single", 20, "single-object latency: after the first workload's first create phase converged, create this many objects one at a time on each system and measure create → status (0: skip)")
	fs.IntVar(&o.WarmUp, "warm-up", 100, "objects the raw program creates, updates and deletes in a namespace of its own before anything is measured, so that no system's first phase runs on a cold control plane (0: none)")
	fs.IntVar(&o.Repeat, "repeat", 1, "rounds of every workload, mode and system, each on a fresh control plane, the systems' order reversed every other round (an even number gives each system the first place as often); the ratios' median over the rounds is reported too; K times as long")
	fs.IntVar(&o.MaxProcs, "gomaxprocs", 1, "GOMAXPROCS of both systems' processes (the gateway's handler's too), as the chart's default CPU request (100m) sets it for the gateway (0: as in the harness's environment, else Go's default of one per core)")
	fs.DurationVar(&o.QuietLimit, "quiet-limit", 60*time.Second, "before each system starts and its backlog is created: write dirty pages back and wait until the machine is quiet (under 15 % of a core busy over 1 s), at most this long, checked after each second (0: start at once)")
	fs.StringVar(&o.RawWatchesChildren, "raw-watches-children", "", "experiment: the raw program also keeps a watch and cache of the Deployments, as the gateway does for the children its requests carry: json (the gateway's encoding), protobuf, or metadata (metadata alone; the figures then measure the gateway against a baseline paying for that watch)")
	fs.DurationVar(&o.Timeout, "phase-timeout", 10*time.Minute, "longest a phase may take to converge")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	idleSet := false
	fs.Visit(func(f *flag.Flag) { idleSet = idleSet || f.Name == "idle" })
	if !idleSet {
		o.Idle = defaultIdle(o.N)
	}
	o.Modes, o.Workloads, o.Systems = splitList(*modes), splitList(*workloads), splitList(*systems)
	if len(o.Systems) == 0 {
		return o, fmt.Errorf("-systems: none given")
	}
	for i, s := range o.Systems {
		if s != systemRaw && s != systemGateway {
			return o, fmt.Errorf("-systems: %q is neither raw nor gateway", s)
		}
		if slices.Contains(o.Systems[:i], s) {
			return o, fmt.Errorf("-systems: %q given twice (both runs would share a namespace)", s)
		}
	}
	for _, m := range o.Modes {
		if m != modeBacklog && m != modeStream {
			return o, fmt.Errorf("-modes: %q is neither backlog nor stream", m)
		}
	}
	for _, w := range o.Workloads {
		if w != workloadFast && w != workloadHandler {
			return o, fmt.Errorf("-workloads: %q is neither fast nor handler", w)
		}
	}
	if w := o.RawWatchesChildren; w != "" && !slices.Contains(rawWatchEncodings, w) {
		fmt.Fprintf(stderr, "-raw-watches-children %q: want one of %s\n", w, strings.Join(rawWatchEncodings, ", "))
		return o, fmt.Errorf("-raw-watches-children %q", w)
	}
	if o.WarmUp < 0 {
		return o, fmt.Errorf("-warm-up must not be negative, got %d", o.WarmUp)
	}
	if o.MaxProcs < 0 {
		return o, fmt.Errorf("-gomaxprocs must not be negative, got %d", o.MaxProcs)
	}
	if o.Repeat < 1 {
		return o, fmt.Errorf("-repeat must be at least 1, got %d", o.Repeat)
	}
	if o.Single < 0 {
		return o, fmt.Errorf("-single must not be negative, got %d", o.Single)
	}
	if o.N < 1 {
		return o, fmt.Errorf("-n must be at least 1, got %d", o.N)
	}
	return o, nil
}

// defaultIdle is the steady-state window: the 60 s at scale, where
// idle resyncs and caches show; 5 s below keeps `make bench` at N=1000 short.
func defaultIdle(n int) time.Duration {
	if n >= 10000 {
		return 60 * time.Second
	}
	return 5 * time.Second
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// runBench starts the cluster, runs every workload and mode against both
// systems, and writes results.json and results.md into opts.Out.
func runBench(ctx context.Context, opts options, log *slog.Logger) (*report, error) {
	out, err := filepath.Abs(opts.Out)
	if err != nil {
		return nil, err
	}
	opts.Out = out
	clusterDir := filepath.Join(out, "cluster")
	// A previous run's etcd data would hold its objects.
	if err := os.RemoveAll(clusterDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(out, "logs", "objects"), 0o755); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	gwBin := opts.Gateway
	if gwBin == "" {
		log.Info("building the gateway")
		if gwBin, err = buildGateway(ctx, out); err != nil {
			return nil, err
		}
	} else if gwBin, err = filepath.Abs(gwBin); err != nil {
		return nil, err
	}
	e := env{outDir: filepath.Join(out, "logs"), gatewayBin: gwBin, self: self, profile: opts.Profile, probe: newSpeedProbe(),
		rawWatchesChildren: opts.RawWatchesChildren}
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	go func() {
		// A probe that cannot read its clock leaves probeMicrosPerUnit at
		// 0 from then on; the run's own figures do not depend on it.
		if err := e.probe.run(probeCtx); err != nil {
			log.Warn("the speed probe stopped; probeMicrosPerUnit reads 0 from here on", "error", err)
		}
	}()
	rep, err := runAll(ctx, opts, e, clusterDir, log)
	if err != nil {
		return nil, err
	}
	if err := rep.write(out); err != nil {
		return nil, err
	}
	log.Info("results", "json", filepath.Join(out, "results.json"), "markdown", filepath.Join(out, "results.md"))
	return rep, nil
}
