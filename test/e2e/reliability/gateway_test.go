package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opgate/opgate/internal/poll"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/internal/localcluster"
)

var (
	buildOnce  sync.Once
	gatewayBin string
	errBuild   error
)

// buildGateway builds cmd/gateway once per run of the package, into the
// cluster's data directory.
func buildGateway(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := filepath.Abs(filepath.Join("..", "..", ".."))
		if err != nil {
			errBuild = err
			return
		}
		gatewayBin = filepath.Join(cluster.Config().DataDir, "bin", "gateway")
		cmd := exec.Command("go", "build", "-o", gatewayBin, "./cmd/gateway")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			errBuild = fmt.Errorf("go build ./cmd/gateway: %w\n%s", err, out)
		}
	})
	if errBuild != nil {
		t.Fatal(errBuild)
	}
	return gatewayBin
}

// gateway is one gateway process; start runs it again after a kill.
type gateway struct {
	t      testing.TB
	name   string
	args   []string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// newGateway runs `gateway run -f` of op, with extra flags, until the test
// ends, and waits until it is ready.
func newGateway(t testing.TB, name string, op *spec.WebhookOperator, extra ...string) *gateway {
	t.Helper()
	data, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), name+".json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ports, err := localcluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, name: name, addr: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	g.args = append([]string{"run", "-f", file, "--kubeconfig", cluster.Kubeconfig(), "--addr", g.addr,
		"--log-level", "debug", "--log-format", "text"}, extra...)
	g.start()
	t.Cleanup(func() { g.stop() })
	return g
}

// start runs the process, its log appended to the test's log file.
func (g *gateway) start() {
	g.t.Helper()
	g.starts++
	bin := buildGateway(g.t)
	logPath := filepath.Join(cluster.Config().DataDir, "logs", strings.ReplaceAll(g.t.Name(), "/", "_")+"-"+g.name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		g.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "### start %d at %s\n", g.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, g.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		g.t.Fatalf("start gateway %s: %v", g.name, err)
	}
	g.cmd, g.exited = cmd, make(chan struct{})
	exited := g.exited
	go func() { _ = cmd.Wait(); close(exited) }()
}

// kill ends the process with SIGKILL: no shutdown, no lease released,
// calls in flight cut off.
func (g *gateway) kill() {
	g.t.Helper()
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		g.t.Fatalf("gateway %s survived SIGKILL for 10s", g.name)
	}
}

func (g *gateway) stop() {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

// get reads one of the gateway's endpoints.
func (g *gateway) get(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), err
}

// waitReady waits until /readyz answers 200.
func (g *gateway) waitReady(timeout time.Duration) {
	g.t.Helper()
	eventually(g.t, timeout, "gateway "+g.name+" ready", func(ctx context.Context) (bool, string, error) {
		select {
		case <-g.exited:
			return false, "", fmt.Errorf("gateway %s exited", g.name)
		default:
		}
		code, body, err := g.get(ctx, "/readyz")
		return code == http.StatusOK, fmt.Sprintf("%d %.200s", code, body), err
	})
}

// leads reports whether the gateway's opgate_leader gauge is 1.
func (g *gateway) leads(ctx context.Context) bool {
	_, body, err := g.get(ctx, "/metrics")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "opgate_leader{") && strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds (see poll.Eventually).
func eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	poll.Eventually(t, timeout, what, cond)
}
