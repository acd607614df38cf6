package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Cluster is a running local cluster started by Start.
type Cluster struct {
	cfg        Config
	procs      []*process
	restConfig *rest.Config
	// components is how each component was started, for StartComponent;
	// stopped names those StopComponent stopped (see restart.go).
	components map[string]component
	stopped    map[string]bool
	stopOnce   sync.Once
	stopErr    error
}

// Start validates and defaults cfg, starts etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok (the first three only
// with cfg.ControlPlaneOnly), registers cfg.Nodes kwok nodes, writes DataDir/kubeconfig and returns once the API server is ready,
// every node is Ready and the default service account exists. On any
// failure, or when ctx ends first, it stops whatever it had started.
//
// The processes run in their own sessions and outlive the caller unless
// Cluster.Stop is called (or cfg.KillWithParent is set); their PIDs are in
// DataDir/pids, which is what Down reads.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := CheckBinaries(cfg.BinDir); err != nil {
		return nil, err
	}
	if running, err := recordedProcesses(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	} else if len(running) > 0 {
		return nil, fmt.Errorf("localcluster: a cluster is already running in %s (%s): stop it first (localcluster down --dir %s)",
			cfg.DataDir, describe(running), cfg.DataDir)
	}
	if err := checkPortsFree(cfg.ports()); err != nil {
		return nil, err
	}
	p, err := ensurePKI(cfg.pkiDir(), time.Now())
	if err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	if err := writeKubeconfigs(cfg, p); err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	c := &Cluster{cfg: cfg}
	if c.restConfig, err = RESTConfig(c.Kubeconfig()); err != nil {
		return nil, err
	}

	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := c.start(ctx, p); err != nil {
		return nil, errors.Join(fmt.Errorf("localcluster: %w", err), stopAll(c.procs, cfg.StopGracePeriod))
	}
	cfg.Logger.Info("cluster ready", "kubeconfig", c.Kubeconfig(), "nodes", cfg.Nodes,
		"took", time.Since(began).Round(100*time.Millisecond))
	return c, nil
}

// start runs the components one at a time, each once the one before
// answers.
func (c *Cluster) start(ctx context.Context, p *pki) error {
	cfg := c.cfg
	began := time.Now()
	probes, err := newProber(p)
	if err != nil {
		return err
	}
	if err := c.startAndWait(ctx, "etcd", etcdArgs(cfg), "etcd /health",
		probes.check(loopbackURL("http", cfg.EtcdClientPort)+"/health", `"health":"true"`)); err != nil {
		return err
	}
	if err := c.startAndWait(ctx, "kube-apiserver", apiServerArgs(cfg, p), "kube-apiserver /readyz",
		probes.check(loopbackURL("https", cfg.APIServerPort)+"/readyz", "ok")); err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(c.restConfig)
	if err != nil {
		return err
	}
	if !cfg.ControlPlaneOnly {
		if err := ensureNodes(ctx, client, cfg.Nodes); err != nil {
			return err
		}
	}
	if cfg.BeforeControllers != nil {
		if err := cfg.BeforeControllers(ctx, rest.CopyConfig(c.restConfig)); err != nil {
			return fmt.Errorf("before kube-controller-manager: %w", err)
		}
	}
	if err := c.startAndWait(ctx, "kube-controller-manager", controllerManagerArgs(cfg, p), "kube-controller-manager /healthz",
		probes.check(loopbackURL("https", cfg.ControllerManagerPort)+"/healthz", "ok")); err != nil {
		return err
	}
	if cfg.ControlPlaneOnly {
		return nil
	}
	if err := c.startAndWait(ctx, "kube-scheduler", schedulerArgs(cfg, p), "kube-scheduler /healthz",
		probes.check(loopbackURL("https", cfg.SchedulerPort)+"/healthz", "ok")); err != nil {
		return err
	}
	if err := c.startAndWait(ctx, "kwok", kwokArgs(cfg), fmt.Sprintf("%d node(s) Ready", cfg.Nodes),
		func(ctx context.Context) (bool, string, error) { return nodesReady(ctx, client, cfg.Nodes, began) }); err != nil {
		return err
	}
	if !cfg.runsServiceAccountController() {
		return nil
	}
	// The serviceaccount controller makes it; pods cannot be created before.
	return c.waitFor(ctx, c.process("kube-controller-manager"), "service account default/default",
		func(ctx context.Context) (bool, string, error) { return defaultServiceAccountExists(ctx, client) })
}

// startAndWait starts a component and waits until ready holds.
func (c *Cluster) startAndWait(ctx context.Context, name string, args []string, what string, ready condition) error {
	args = append(args, c.cfg.ExtraArgs[name]...)
	p, err := startProcess(c.cfg, name, args)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	if c.components == nil {
		c.components = map[string]component{}
	}
	c.components[name] = component{args: args, what: what, ready: ready}
	return c.waitFor(ctx, p, what, ready)
}

// PIDs are the process IDs of the running components, by name (etcd,
// kube-apiserver, …): for measuring what they spend.
func (c *Cluster) PIDs() map[string]int {
	out := make(map[string]int, len(c.procs))
	for _, p := range c.procs {
		out[p.name] = p.pid
	}
	return out
}

// process is the started component called name.
func (c *Cluster) process(name string) *process {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	panic("localcluster: no component " + name)
}

// condition reports whether what is awaited holds, and if not, what was
// seen instead.
type condition func(ctx context.Context) (done bool, seen string, err error)

// waitFor polls cond until it holds, a started process exits, or ctx ends.
// Errors point at the log of suspect, the component that should make cond
// true.
func (c *Cluster) waitFor(ctx context.Context, suspect *process, what string, cond condition) error {
	c.cfg.Logger.Info("waiting", "for", what)
	began := time.Now()
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	var seen string
	for {
		for _, p := range c.procs {
			if p.exited() && !c.stopped[p.name] {
				return fmt.Errorf("waiting for %s: %w", what, p.exitErr())
			}
		}
		done, last, err := cond(ctx)
		if err != nil {
			last = err.Error()
		}
		if done {
			c.cfg.Logger.Debug("ready", "what", what, "took", time.Since(began).Round(10*time.Millisecond))
			return nil
		}
		if last != "" {
			seen = last
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return fmt.Errorf("%w while waiting for %s", ctx.Err(), what)
			}
			return fmt.Errorf("%w after %s waiting for %s (last seen: %s); %s %s",
				ctx.Err(), time.Since(began).Round(time.Second), what, seen, suspect.name, suspect.logHint())
		case <-ticker.C:
		}
	}
}

// Kubeconfig is the path of the admin kubeconfig.
func (c *Cluster) Kubeconfig() string { return KubeconfigPath(c.cfg.DataDir) }

// RESTConfig is a copy of the admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Config is the cluster's configuration with every default filled in.
func (c *Cluster) Config() Config { return c.cfg }

// Stop stops every process of the cluster (SIGTERM, then SIGKILL after the
// grace period) in reverse start order and removes their PID files. The
// data directory stays, so the next Start on it finds the same objects.
// Stop is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.stopErr = stopAll(c.procs, c.cfg.StopGracePeriod)
		c.cfg.Logger.Info("cluster stopped", "dir", c.cfg.DataDir)
	})
	return c.stopErr
}

// Down stops the processes recorded in dataDir's PID files, whoever started
// them, and removes the PID files. It returns the names of the components
// it stopped: none when nothing was running.
func Down(dataDir string, grace time.Duration) ([]string, error) {
	procs, err := recordedProcesses(dataDir)
	if err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	names := make([]string, 0, len(procs))
	for _, p := range procs {
		names = append(names, fmt.Sprintf("%s (pid %d)", p.name, p.pid))
	}
	if err := stopAll(procs, grace); err != nil {
		return names, fmt.Errorf("localcluster: %w", err)
	}
	return names, nil
}

func describe(procs []*process) string {
	parts := make([]string, len(procs))
	for i, p := range procs {
		parts[i] = p.name + " pid " + strconv.Itoa(p.pid)
	}
	return strings.Join(parts, ", ")
}

// checkPortsFree fails on the first port something already listens on.
func checkPortsFree(ports []namedPort) error {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
		if err != nil {
			return fmt.Errorf("localcluster: port %d for %s is not free (%v): another cluster or program uses it; choose other ports",
				p.port, p.name, err)
		}
		_ = l.Close()
	}
	return nil
}
