// Package reliability breaks things on purpose around a running gateway —
// the gateway process killed mid-callback, etcd and the API server down,
// watches expired by compaction, the leader of two replicas killed — and
// checks with test/invariant that nothing was lost, orphaned or stuck and
// that every status converged (docs/reliability.md).
//
// TestMain starts one full local cluster (internal/localcluster) for the
// package, with etcd compacted every few seconds so that watches expire.
// The scenarios run one after another: some stop the cluster's components.
// OPGATE_SEED fixes the seed of their randomness (each test logs its own);
// OPGATE_KEEP_LOGS keeps the logs of a passing run.
package reliability

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/opgate/opgate/internal/localcluster"
)

// compactionInterval is how often the API server compacts etcd: short, so
// that a watch's resource version expires within a scenario.
const compactionInterval = 5 * time.Second

// cluster is the cluster every test of the package shares.
var cluster *localcluster.Cluster

func TestMain(m *testing.M) { os.Exit(runWithCluster(m)) }

func runWithCluster(m *testing.M) int {
	binDir := localcluster.DefaultBinDir()
	if err := localcluster.CheckBinaries(binDir); err != nil {
		fmt.Fprintf(os.Stderr, "reliability: %v\nreliability: run `make tools` (builds them into %s)\n", err, binDir)
		return 1
	}
	dir, err := os.MkdirTemp("", "opgate-reliability-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "reliability: %v\n", err)
		return 1
	}
	ports, err := localcluster.FreePorts(5)
	if err != nil {
		fmt.Fprintf(os.Stderr, "reliability: %v\n", err)
		return 1
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	started := time.Now()
	c, err := localcluster.Start(ctx, localcluster.Config{
		DataDir: dir, BinDir: binDir,
		APIServerPort: ports[0], EtcdClientPort: ports[1], EtcdPeerPort: ports[2],
		ControllerManagerPort: ports[3], SchedulerPort: ports[4],
		KillWithParent: true,
		ExtraArgs: map[string][]string{
			"kube-apiserver": {"--etcd-compaction-interval=" + compactionInterval.String()},
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	stopSignals()
	if err != nil {
		fmt.Fprintf(os.Stderr, "reliability: start local cluster: %v\nreliability: logs kept in %s/logs\n", err, dir)
		return 1
	}
	cluster = c
	fmt.Fprintf(os.Stderr, "reliability: local cluster ready in %s\n", time.Since(started).Round(100*time.Millisecond))
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "reliability: stop local cluster: %v\n", err)
		code = 1
	}
	if code != 0 || os.Getenv("OPGATE_KEEP_LOGS") != "" {
		fmt.Fprintf(os.Stderr, "reliability: cluster and gateway logs kept in %s\n", dir)
		return code
	}
	_ = os.RemoveAll(dir)
	return 0
}
