// Package e2e runs opgate against a full local cluster (internal/localcluster):
// a real API server, controller-manager (garbage collector included),
// scheduler, and kwok playing the kubelets. TestMain starts one cluster for
// the package on free ports in a temporary directory, apart from the one
// `make cluster-up` runs, and stops it when the tests end.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opgate/opgate/internal/poll"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/internal/localcluster"
)

// cluster is the cluster every test of the package shares.
var cluster *localcluster.Cluster

func TestMain(m *testing.M) { os.Exit(runWithCluster(m)) }

func runWithCluster(m *testing.M) int {
	binDir := localcluster.DefaultBinDir()
	if err := localcluster.CheckBinaries(binDir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\ne2e: the e2e tests need the local cluster binaries: run `make tools` (builds them into %s; OPGATE_TOOLS_DIR overrides)\n",
			err, binDir)
		return 1
	}
	dir, err := os.MkdirTemp("", "opgate-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	ports, err := localcluster.FreePorts(5)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	// Ctrl-C during the start: Start stops what it had started.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	started := time.Now()
	c, err := localcluster.Start(ctx, localcluster.Config{
		BinDir:                binDir,
		DataDir:               dir,
		APIServerPort:         ports[0],
		EtcdClientPort:        ports[1],
		EtcdPeerPort:          ports[2],
		ControllerManagerPort: ports[3],
		SchedulerPort:         ports[4],
		Nodes:                 2,
		KillWithParent:        true, // a test binary killed by -timeout takes the cluster with it
		Logger:                slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	stopSignals()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start local cluster: %v\ne2e: logs kept in %s/logs\n", err, dir)
		return 1
	}
	cluster = c
	fmt.Fprintf(os.Stderr, "e2e: local cluster ready in %s (kubeconfig %s)\n", time.Since(started).Round(100*time.Millisecond), c.Kubeconfig())
	stopOnSignal(c, dir)

	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: stop local cluster: %v\n", err)
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: cluster logs kept in %s/logs\n", dir)
		return code
	}
	_ = os.RemoveAll(dir)
	return 0
}

// stopOnSignal stops the cluster and exits on Ctrl-C or SIGTERM while the
// tests run.
func stopOnSignal(c *localcluster.Cluster, dir string) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		_ = c.Stop()
		fmt.Fprintf(os.Stderr, "e2e: %v: cluster stopped, logs in %s/logs\n", sig, dir)
		os.Exit(130)
	}()
}

// Kubeconfig is the path of the shared cluster's admin kubeconfig, for
// tests that run kubectl, helm or the gateway binary against it.
func Kubeconfig() string { return cluster.Kubeconfig() }

// RESTConfig is a fresh copy of the shared cluster's admin client
// configuration.
func RESTConfig() *rest.Config { return cluster.RESTConfig() }

// Clientset is a typed admin client of the shared cluster.
func Clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(RESTConfig())
	if err != nil {
		t.Fatalf("client for the e2e cluster: %v", err)
	}
	return client
}

// NewNamespace creates a namespace named after the test, with a random
// suffix, and deletes it when the test ends.
func NewNamespace(t testing.TB, client kubernetes.Interface) string {
	t.Helper()
	prefix := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	ns, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(prefix, "-") + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		err := client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
		if err != nil {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// Condition is what Eventually waits for.
type Condition = poll.Condition

// Eventually polls cond until it holds (see poll.Eventually).
func Eventually(t testing.TB, timeout time.Duration, what string, cond Condition) {
	t.Helper()
	poll.Eventually(t, timeout, what, cond)
}
