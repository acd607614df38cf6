package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// system is what is measured: the gateway with its handler, or the raw
// program.
type system interface {
	// prepare starts what the system needs before its clock starts (the
	// gateway's handler: a user's handler is up before the gateway is).
	prepare(ctx context.Context, ns string, tune tuning) error
	start(ctx context.Context, ns string, tune tuning) error
	stats(ctx context.Context) (stats, error)
	usage() (procUsage, error)
	// handlerUsage is the gateway's handler process's (zero for raw,
	// which does that work in its own process).
	handlerUsage() (procUsage, error)
	stop()
}

// tuning is what both systems get alike.
type tuning struct {
	Workers int           `json:"workers"`
	QPS     float64       `json:"qps"`
	Burst   int           `json:"burst"`
	Sleep   time.Duration `json:"sleepPerCall"`
	// GOMAXPROCS of both systems' processes, the gateway's handler's
	// included (0: as in the harness's environment), as the chart sets it
	// from the CPU request.
	GOMAXPROCS int `json:"gomaxprocs,omitempty"`
}

// environ is what a system's process gets besides the harness's
// environment.
func (t tuning) environ() []string {
	if t.GOMAXPROCS > 0 {
		return []string{"GOMAXPROCS=" + strconv.Itoa(t.GOMAXPROCS)}
	}
	return nil
}

type env struct {
	kubeconfig string
	outDir     string
	gatewayBin string
	// profile: record both systems' CPU and heap profiles under
	// outDir/profiles/<namespace>.
	profile bool
	self    string // this program, re-run as `raw` or `handler`
	// rawWatchesChildren: how the raw program also watches the children
	// (-raw-watches-children; "": it does not).
	rawWatchesChildren string
	// probe times a fixed computation for every phase's figures
	// (speedProbe); the harness reads it, the systems do not.
	probe *speedProbe
}

// gatewaySystem is the gateway and its Go handler, each a process of its
// own.
type gatewaySystem struct {
	env         env
	handler     *child
	handlerAddr string
	gw          *child
	prof        *profiler
	handlerProf *profiler
}

func (g *gatewaySystem) prepare(ctx context.Context, ns string, tune tuning) error {
	var err error
	if g.handlerAddr, err = freeAddr(); err != nil {
		return err
	}
	handlerLog := filepath.Join(g.env.outDir, "handler-"+ns+".log")
	g.handler, err = startChild("handler", handlerLog, tune.environ(), g.env.self, "handler",
		"-addr", g.handlerAddr, "-sleep", tune.Sleep.String())
	if err != nil {
		return err
	}
	return g.handler.waitHTTP(ctx, "http://"+g.handlerAddr+"/healthz", handlerLog)
}

func (g *gatewaySystem) start(ctx context.Context, ns string, tune tuning) error {
	opFile := filepath.Join(g.env.outDir, "operator-"+ns+".yaml")
	if err := os.WriteFile(opFile, []byte(operatorYAML(ns, "http://"+g.handlerAddr)), 0o644); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	logPath := filepath.Join(g.env.outDir, "gateway-"+ns+".log")
	args := []string{"run", "-f", opFile,
		"--kubeconfig", g.env.kubeconfig, "--addr", addr, "--log-level", "warn", "--log-format", "json",
		"--workers", strconv.Itoa(tune.Workers),
		"--kube-api-qps", strconv.FormatFloat(tune.QPS, 'f', -1, 32), "--kube-api-burst", strconv.Itoa(tune.Burst)}
	if g.env.profile {
		args = append(args, "--profiling")
	}
	if g.gw, err = startChild("gateway", logPath, tune.environ(), g.env.gatewayBin, args...); err != nil {
		return err
	}
	if err := g.gw.waitHTTP(ctx, "http://"+addr+"/healthz", logPath); err != nil {
		return err
	}
	if g.env.profile {
		// The handler's profiles beside the gateway's, in <ns>-handler.
		dir := filepath.Join(g.env.outDir, "profiles", ns)
		if g.prof, err = startProfiler(httpFetcher("http://"+addr), dir); err != nil {
			return err
		}
		g.handlerProf, err = startProfiler(httpFetcher("http://"+g.handlerAddr), dir+"-handler")
	}
	return err
}

func (g *gatewaySystem) stats(ctx context.Context) (stats, error) {
	return fetchStats(ctx, "handler", g.handlerAddr)
}
func (g *gatewaySystem) usage() (procUsage, error) { return g.gw.usage() }
func (g *gatewaySystem) handlerUsage() (procUsage, error) {
	if g.handler == nil {
		return procUsage{}, nil
	}
	return g.handler.usage()
}

// phaseDone keeps the heap profiles at the end of a phase.
func (g *gatewaySystem) phaseDone(phase string) {
	for _, p := range []*profiler{g.prof, g.handlerProf} {
		if p != nil {
			p.heap(phase)
		}
	}
}

func (g *gatewaySystem) stop() {
	for _, p := range []*profiler{g.prof, g.handlerProf} {
		if p != nil {
			p.stop()
		}
	}
	g.prof, g.handlerProf = nil, nil
	// The gateway first: stopped before its handler, it makes no call
	// that fails on the way out.
	for _, c := range []*child{g.gw, g.handler} {
		if c != nil {
			c.stop()
		}
	}
}

// operatorYAML registers the bench handler for the run's namespace only.
func operatorYAML(ns, url string) string {
	return fmt.Sprintf(`apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata:
  name: bench
spec:
  watch:
    apiVersion: %s/%s
    kind: %s
    namespaces: [%s]
  children:
    - apiVersion: apps/v1
      kind: Deployment
  handler:
    url: %s
  callbacks:
    - id: create
      events: [create]
      path: /create
    - id: update
      events: [update]
      path: /update
      when:
        fields: [spec.size]
    - id: delete
      events: [delete]
      path: /delete
`, group, version, kind, ns, url)
}

// rawSystem is the raw client-go program, this binary re-run as `raw`.
type rawSystem struct {
	env  env
	addr string
	proc *child
	prof *profiler
}

func (r *rawSystem) prepare(context.Context, string, tuning) error { return nil }

func (r *rawSystem) start(ctx context.Context, ns string, tune tuning) error {
	var err error
	if r.addr, err = freeAddr(); err != nil {
		return err
	}
	logPath := filepath.Join(r.env.outDir, "raw-"+ns+".log")
	args := []string{"raw", "-kubeconfig", r.env.kubeconfig,
		"-namespace", ns, "-workers", strconv.Itoa(tune.Workers),
		"-qps", strconv.FormatFloat(tune.QPS, 'f', -1, 64), "-burst", strconv.Itoa(tune.Burst),
		"-sleep", tune.Sleep.String(), "-addr", r.addr}
	if r.env.rawWatchesChildren != "" {
		args = append(args, "-watch-children", r.env.rawWatchesChildren)
	}
	r.proc, err = startChild("raw", logPath, tune.environ(), r.env.self, args...)
	if err != nil {
		return err
	}
	if err := r.proc.waitHTTP(ctx, "http://"+r.addr+"/healthz", logPath); err != nil {
		return err
	}
	if r.env.profile {
		r.prof, err = startProfiler(httpFetcher("http://"+r.addr), filepath.Join(r.env.outDir, "profiles", ns))
	}
	return err
}

// phaseDone keeps the heap profile at the end of a phase.
func (r *rawSystem) phaseDone(phase string) {
	if r.prof != nil {
		r.prof.heap(phase)
	}
}

func (r *rawSystem) stats(ctx context.Context) (stats, error) { return fetchStats(ctx, "raw", r.addr) }
func (r *rawSystem) usage() (procUsage, error)                { return r.proc.usage() }
func (r *rawSystem) handlerUsage() (procUsage, error)         { return procUsage{}, nil }

// fetchStats reads the recorder a child process serves at addr.
func fetchStats(ctx context.Context, name, addr string) (stats, error) {
	var s stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stats", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("%s stats: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s stats: %s", name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("%s stats: %w", name, err)
	}
	return s, nil
}

func (r *rawSystem) stop() {
	if r.prof != nil {
		r.prof.stop()
		r.prof = nil
	}
	if r.proc != nil {
		r.proc.stop()
	}
}
