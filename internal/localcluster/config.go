// Package localcluster starts and stops a real local Kubernetes control plane
// — etcd, kube-apiserver, kube-controller-manager, kube-scheduler — plus kwok
// simulating the nodes and the kubelets, as plain processes on 127.0.0.1.
//
// The binaries come from hack/build-tools.sh (`make tools`); nothing is ever
// downloaded. Every file of a cluster lives under Config.DataDir, so two
// clusters with different directories and ports run side by side.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// ErrMissingBinaries means the toolchain was not built (`make tools`).
var ErrMissingBinaries = errors.New("local cluster binaries missing: run `make tools`")

// DefaultAPIServerPort is the kube-apiserver port when Config leaves it zero.
const DefaultAPIServerPort = 6443

// Binaries a cluster needs in Config.BinDir, in start order.
var requiredBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// Config describes one local cluster. Zero values get defaults; see Start.
type Config struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler and kwok. Default: DefaultBinDir().
	BinDir string
	// DataDir holds etcd's data, certificates, kubeconfigs, logs (logs/) and
	// PID files (pids/). Required.
	DataDir string

	// Loopback ports. APIServerPort defaults to 6443; a zero port among the
	// others is derived from it: etcd client +1, etcd peer +2,
	// kube-controller-manager +3, kube-scheduler +4. Two clusters whose
	// APIServerPorts differ by 5 or more never collide.
	APIServerPort         int
	EtcdClientPort        int
	EtcdPeerPort          int
	ControllerManagerPort int
	SchedulerPort         int

	// Nodes is the number of kwok nodes; default 1.
	Nodes int

	// Controllers is kube-controller-manager's --controllers list; default
	// ["*"] (every default controller). A cluster for measurements runs
	// only "garbagecollector", so Deployments stay inert and nothing but
	// the workload writes.
	Controllers []string
	// ControlPlaneOnly starts etcd, kube-apiserver and
	// kube-controller-manager only: no kube-scheduler, no kwok, no nodes,
	// and no wait for the default service account (Nodes is ignored). Pods
	// never run on such a cluster.
	ControlPlaneOnly bool
	// ControllerManagerFlags are appended to kube-controller-manager's
	// command line, e.g. --kube-api-qps=500: its default client limit (20
	// QPS) makes the garbage collector the bottleneck of a large deletion.
	ControllerManagerFlags []string
	// APIServerFlags are appended to kube-apiserver's command line (the
	// last of a flag given twice wins), e.g. --profiling=true to profile
	// what a client costs it.
	APIServerFlags []string
	// BeforeControllers runs once kube-apiserver is ready, before
	// kube-controller-manager starts: the place to install CRDs whose
	// objects own children. The garbage collector learns kinds that appear
	// after its start only at its next discovery resync (30 s) and backs
	// off on their dependents meanwhile, which delays their collection by
	// minutes.
	BeforeControllers func(ctx context.Context, cfg *rest.Config) error

	// StartTimeout bounds the whole start, readiness included; default 3m.
	StartTimeout time.Duration
	// StopGracePeriod is how long a process may take to exit after SIGTERM
	// before it gets SIGKILL; default 10s.
	StopGracePeriod time.Duration

	// KillWithParent makes the kernel kill every process of the cluster when
	// the process that called Start dies (Linux only), so a crashed or
	// timed-out test leaves nothing behind. Leave it false for a cluster
	// that must outlive its starter (`localcluster up`).
	KillWithParent bool

	// ExtraArgs are flags appended to a component's command line, by
	// component name: {"kube-apiserver": {"--etcd-compaction-interval=10s"}}.
	ExtraArgs map[string][]string

	// Logger receives progress; default discards.
	Logger *slog.Logger
}

// DefaultBinDir is $OPGATE_TOOLS_DIR/bin, or the cache directory that
// hack/build-tools.sh uses when OPGATE_TOOLS_DIR is unset.
func DefaultBinDir() string {
	if dir := os.Getenv("OPGATE_TOOLS_DIR"); dir != "" {
		return filepath.Join(dir, "bin")
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "."
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "opgate", "k8s-v1.32.4", "bin")
}

// CheckBinaries reports every required binary missing from binDir; the
// error wraps ErrMissingBinaries.
func CheckBinaries(binDir string) error {
	var missing []string
	for _, name := range requiredBinaries {
		info, err := os.Stat(filepath.Join(binDir, name))
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (not in %s: %s)", ErrMissingBinaries, binDir, strings.Join(missing, ", "))
	}
	return nil
}

// withDefaults validates cfg and fills in its zero values.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.DataDir == "" {
		return cfg, errors.New("localcluster: Config.DataDir is required")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, fmt.Errorf("localcluster: data dir: %w", err)
	}
	cfg.DataDir = dir
	if cfg.BinDir == "" {
		cfg.BinDir = DefaultBinDir()
	}
	if cfg.BinDir, err = filepath.Abs(cfg.BinDir); err != nil {
		return cfg, fmt.Errorf("localcluster: bin dir: %w", err)
	}
	if cfg.APIServerPort == 0 {
		cfg.APIServerPort = DefaultAPIServerPort
	}
	derived := []*int{&cfg.EtcdClientPort, &cfg.EtcdPeerPort, &cfg.ControllerManagerPort, &cfg.SchedulerPort}
	for i, port := range derived {
		if *port == 0 {
			*port = cfg.APIServerPort + i + 1
		}
	}
	if err := validatePorts(cfg.ports()); err != nil {
		return cfg, err
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 1
	}
	if cfg.Nodes < 0 {
		return cfg, fmt.Errorf("localcluster: Nodes must be positive, got %d", cfg.Nodes)
	}
	if len(cfg.Controllers) == 0 {
		cfg.Controllers = []string{"*"}
	}
	for _, c := range cfg.Controllers {
		if c == "" || strings.ContainsAny(c, ", ") {
			return cfg, fmt.Errorf("localcluster: controller name %q: want one name (or *, -name) per entry", c)
		}
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 3 * time.Minute
	}
	if cfg.StopGracePeriod <= 0 {
		cfg.StopGracePeriod = 10 * time.Second
	}
	for name := range cfg.ExtraArgs {
		if !slices.Contains(requiredBinaries, name) {
			return cfg, fmt.Errorf("localcluster: ExtraArgs for %q: no such component (want one of %v)", name, requiredBinaries)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return cfg, nil
}

// namedPort is one port of the cluster and what listens on it.
type namedPort struct {
	name string
	port int
}

func (cfg Config) ports() []namedPort {
	return []namedPort{
		{"kube-apiserver", cfg.APIServerPort},
		{"etcd client", cfg.EtcdClientPort},
		{"etcd peer", cfg.EtcdPeerPort},
		{"kube-controller-manager", cfg.ControllerManagerPort},
		{"kube-scheduler", cfg.SchedulerPort},
	}
}

func validatePorts(ports []namedPort) error {
	seen := map[int]string{}
	for _, p := range ports {
		if p.port < 1 || p.port > 65535 {
			return fmt.Errorf("localcluster: %s port %d out of range 1-65535", p.name, p.port)
		}
		if other, ok := seen[p.port]; ok {
			return fmt.Errorf("localcluster: %s and %s both on port %d", other, p.name, p.port)
		}
		seen[p.port] = p.name
	}
	return nil
}

// runsServiceAccountController says whether the controller-manager makes
// the default service account (what pods need before they can be created).
func (cfg Config) runsServiceAccountController() bool {
	on := false
	for _, c := range cfg.Controllers {
		switch c {
		case "*", "serviceaccount":
			on = true
		case "-serviceaccount":
			return false
		}
	}
	return on
}

// Paths under DataDir.
func (cfg Config) pkiDir() string      { return filepath.Join(cfg.DataDir, "pki") }
func (cfg Config) etcdDataDir() string { return filepath.Join(cfg.DataDir, "etcd") }

// KubeconfigPath is the admin kubeconfig of the cluster in dataDir.
func KubeconfigPath(dataDir string) string { return filepath.Join(dataDir, "kubeconfig") }
