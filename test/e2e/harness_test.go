package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/internal/localcluster"
)

// This file runs opgate the way a user does: the gateway and the example
// handlers as separate processes on loopback ports, against the shared
// cluster, with the repository's CRDs installed.

// startTimeout bounds how long a process may take to listen on its port.
const startTimeout = time.Minute

// repoRoot is the module's root: the tests run in test/e2e.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

// binaries are the gateway and the Go example handlers, built once per run
// of the package into the cluster's data directory (removed with it when
// the tests pass).
type binaries struct {
	gateway, memcached, nginx string
}

var (
	buildOnce  sync.Once
	builtBins  binaries
	errBuild   error
	crdOnce    sync.Once
	errInstall error
)

// buildBinaries builds the gateway and the example handlers, once.
func buildBinaries(t testing.TB) binaries {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		dir := filepath.Join(cluster.Config().DataDir, "opgate-bin")
		started := time.Now()
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"./cmd/gateway", "./examples/handlers/memcached", "./examples/handlers/nginx")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			errBuild = fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
			return
		}
		builtBins = binaries{
			gateway:   filepath.Join(dir, "gateway"),
			memcached: filepath.Join(dir, "memcached"),
			nginx:     filepath.Join(dir, "nginx"),
		}
		fmt.Fprintf(os.Stderr, "e2e: gateway and handlers built in %s\n", time.Since(started).Round(100*time.Millisecond))
	})
	if errBuild != nil {
		t.Fatalf("build the gateway and the example handlers: %v", errBuild)
	}
	return builtBins
}

// installCRDs applies every CRD of crds/ (the WebhookOperator's) and of
// examples/crds/ (the examples') by server-side apply, once, and waits until each is
// Established.
func installCRDs(t testing.TB) {
	t.Helper()
	root := repoRoot(t)
	crdOnce.Do(func() {
		errInstall = applyCRDs(filepath.Join(root, "crds"))
		if errInstall == nil {
			errInstall = applyCRDs(filepath.Join(root, "examples", "crds"))
		}
	})
	if errInstall != nil {
		t.Fatalf("install crds/ and examples/crds/: %v", errInstall)
	}
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func applyCRDs(dir string) error {
	client, err := dynamic.NewForConfig(RESTConfig())
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs in %s (%v)", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rolloutTimeout)
	defer cancel()
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if obj == nil {
				continue
			}
			u := &unstructured.Unstructured{Object: obj}
			body, err := json.Marshal(obj)
			if err != nil {
				return err
			}
			_, err = client.Resource(crdResource).Patch(ctx, u.GetName(), types.ApplyPatchType, body,
				metav1.PatchOptions{FieldManager: "opgate-e2e", Force: ptrTo(true)})
			if err != nil {
				return fmt.Errorf("apply %s from %s: %w", u.GetName(), f, err)
			}
			names = append(names, u.GetName())
		}
	}
	for _, name := range names {
		if err := waitEstablished(ctx, client, name); err != nil {
			return err
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, client dynamic.Interface, name string) error {
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		crd, err := client.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not Established: %w (last error: %v)", name, ctx.Err(), err)
		case <-ticker.C:
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// freePort is one free loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	ports, err := localcluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

// logDir is a directory for the logs of one test's processes, in the
// cluster's data directory, which TestMain keeps when a test fails.
func logDir(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	dir := filepath.Join(cluster.Config().DataDir, "opgate-logs", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// process is a command the test started; it is stopped when the test ends.
type process struct {
	name, log string
	cmd       *exec.Cmd
	exited    chan struct{} // closed once Wait returned
	err       error         // Wait's result, set before exited is closed
}

// startProcess runs argv with its output in name.log under logDir(t) and
// stops it (SIGTERM, then SIGKILL after 10s) when the test ends. If the
// test failed, the end of the log is printed then.
func startProcess(t testing.TB, name string, env []string, argv ...string) *process {
	t.Helper()
	path := filepath.Join(logDir(t), name+".log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "$ %s\n", strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = killWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, log: path, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("last lines of %s (%s):\n%s", name, path, tail(path, 40))
		}
	})
	return p
}

func (p *process) stop(t testing.TB) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s (pid %d) ignored SIGTERM for 10s; killing it", p.name, p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitListening waits until the process accepts connections on addr, and
// fails the test if it exits first or takes longer than startTimeout.
func (p *process) waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before listening on %s: %v\n%s", p.name, addr, p.err, tail(p.log, 40))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after %s: %v\n%s", p.name, addr, startTimeout, err, tail(p.log, 40))
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// operatorFile loads an example registration from examples/operators,
// lets edit change it (handler URL, namespaces, timer interval, auth) and
// writes it to a file for `gateway run -f`, checking that the gateway
// accepts it.
func operatorFile(t testing.TB, example string, edit func(*spec.WebhookOperator)) string {
	t.Helper()
	ops, err := spec.LoadFiles(filepath.Join(repoRoot(t), "examples", "operators", example))
	if err != nil {
		t.Fatalf("load examples/operators/%s: %v", example, err)
	}
	if len(ops) != 1 {
		t.Fatalf("examples/operators/%s: want 1 operator, got %d", example, len(ops))
	}
	op := ops[0]
	edit(op)
	data, err := json.MarshalIndent(map[string]any{
		"apiVersion": spec.APIVersion,
		"kind":       spec.Kind,
		"metadata":   map[string]any{"name": op.Name},
		"spec":       op.Spec,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), example)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := spec.LoadFiles(path); err != nil {
		t.Fatalf("the operator file written for this test is invalid: %v\n%s", err, data)
	}
	return path
}

// startGateway runs `gateway run -f operatorFile` against the shared
// cluster and waits until its /readyz answers 200.
func startGateway(t testing.TB, bins binaries, operatorFile string, extraArgs ...string) *process {
	t.Helper()
	p, _ := startGatewayAt(t, bins, operatorFile, extraArgs...)
	return p
}

// startGatewayAt is startGateway that also returns the address of the
// gateway's ops server (/metrics, /readyz, /ui/).
func startGatewayAt(t testing.TB, bins binaries, operatorFile string, extraArgs ...string) (*process, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	argv := append([]string{bins.gateway, "run", "-f", operatorFile, "--kubeconfig", Kubeconfig(), "--addr", addr, "--log-level", "debug"}, extraArgs...)
	p := startProcess(t, "gateway", nil, argv...)
	p.waitListening(t, addr)
	Eventually(t, startTimeout, "the gateway's /readyz to answer 200", func(ctx context.Context) (bool, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if err != nil {
			return false, "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, "", err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, body), nil
	})
	return p, addr
}

// dynamicClient is a dynamic admin client of the shared cluster.
func dynamicClient(t testing.TB) dynamic.Interface {
	t.Helper()
	client, err := dynamic.NewForConfig(RESTConfig())
	if err != nil {
		t.Fatalf("dynamic client: %v", err)
	}
	return client
}

// isGone reports whether err says the object does not exist.
func isGone(err error) bool { return apierrors.IsNotFound(err) }
