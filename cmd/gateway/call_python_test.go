package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestCallCommandAgainstThePythonHandler(t *testing.T) {
	const secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="
	secretFile, wrongFile := writeSecret(t, secret), writeSecret(t, "whsec_b3RoZXIta2V5")
	url := startPythonHandler(t, requirePython(t), secretFile)
	common := []string{"-f", registrationAt(t, url), "--object", callTestdata + "memcached.yaml",
		"--crd", memcachedCRD, "-o", "json", "--show-children"}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		check    func(t *testing.T, rep *callReport)
	}{{
		name: "create answers a Deployment of spec.size replicas labelled for the resource",
		args: []string{"--callback", "create-deployment", "--hmac-secret-file", secretFile},
		check: func(t *testing.T, rep *callReport) {
			if len(rep.Children) != 1 || rep.Children[0].Kind != "Deployment" || rep.Children[0].Name != "example-memcached" {
				t.Fatalf("children = %+v, want the Deployment example-memcached", rep.Children)
			}
			obj := rep.Children[0].Object
			replicas, _, _ := unstructured.NestedFloat64(obj, "spec", "replicas") // JSON numbers decode as float64
			cr, _, _ := unstructured.NestedString(obj, "spec", "template", "metadata", "labels", "memcached_cr")
			sel, _, _ := unstructured.NestedString(obj, "spec", "selector", "matchLabels", "memcached_cr")
			if replicas != 3 || cr != "example-memcached" || sel != "example-memcached" {
				t.Errorf("replicas %v, memcached_cr label %q, selector %q; want 3 and example-memcached", replicas, cr, sel)
			}
		},
	}, {
		name: "sync lists the running related pods sorted in status.nodes",
		args: []string{"--callback", "status", "--hmac-secret-file", secretFile, "--related", callTestdata + "pods.yaml"},
		check: func(t *testing.T, rep *callReport) {
			want := []any{"example-memcached-7d9f-abcde", "example-memcached-7d9f-mn4p7", "example-memcached-7d9f-zzkq2"}
			if rep.Status == nil || !reflect.DeepEqual(rep.Status.Merged["nodes"], want) || len(rep.Status.Pruned) > 0 {
				t.Errorf("status = %+v, want nodes %v and nothing pruned", rep.Status, want)
			}
		},
	}, {
		name: "delete releases the finalizer",
		args: []string{"--callback", "cleanup", "--hmac-secret-file", secretFile},
		check: func(t *testing.T, rep *callReport) {
			if rep.Finalized == nil || !*rep.Finalized {
				t.Errorf("finalized = %v, want true", rep.Finalized)
			}
		},
	}, {
		name: "the backup timer stamps status.lastBackup and says so in an event",
		args: []string{"--callback", "backup", "--hmac-secret-file", secretFile},
		check: func(t *testing.T, rep *callReport) {
			if rep.Status == nil || rep.Status.Merged["lastBackup"] == nil || len(rep.Events) != 1 || rep.Events[0].Reason != "Backup" {
				t.Errorf("status %+v events %+v, want lastBackup and a Backup event", rep.Status, rep.Events)
			}
		},
	}, {
		name:     "a bad signature is answered 401, retried as the rotation it may be",
		args:     []string{"--callback", "create-deployment", "--hmac-secret-file", wrongFile},
		wantCode: 1,
		check:    assertRejected,
	}, {
		name:     "an unsigned request is answered 401 too",
		args:     []string{"--callback", "create-deployment"},
		wantCode: 1,
		check:    assertRejected,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCall(t, append(slices.Clone(common), tt.args...)...)
			if r.code != tt.wantCode || r.rep == nil {
				t.Fatalf("exit %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", r.code, r.err, tt.wantCode, r.stdout, r.stderr)
			}
			tt.check(t, r.rep)
		})
	}
}

// While a secret is rotated the handler is given both: a gateway signing
// with either is accepted, one signing with neither is not.
func TestThePythonHandlerAcceptsEachOfSeveralSecrets(t *testing.T) {
	previous, next := writeSecret(t, "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="), writeSecret(t, "raw-next-key")
	url := startPythonHandler(t, requirePython(t), previous, next)
	common := []string{"-f", registrationAt(t, url), "--object", callTestdata + "memcached.yaml", "-o", "json", "--callback", "cleanup"}
	for name, tt := range map[string]struct {
		secret   string
		wantCode int
	}{
		"signed with the previous secret": {previous, 0},
		"signed with the next secret":     {next, 0},
		"signed with neither":             {writeSecret(t, "retired"), 1},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCall(t, append(slices.Clone(common), "--hmac-secret-file", tt.secret)...)
			if r.code != tt.wantCode || r.rep == nil {
				t.Fatalf("exit %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", r.code, r.err, tt.wantCode, r.stdout, r.stderr)
			}
			if tt.wantCode != 0 {
				assertRejected(t, r.rep)
			}
		})
	}
}

func assertRejected(t *testing.T, rep *callReport) {
	t.Helper()
	if o := rep.Outcome; o.Result != resultTemporary || o.Reason != "HandlerUnauthorized" || !strings.Contains(o.Message, "HTTP 401") {
		t.Errorf("outcome = %+v, want a temporary HandlerUnauthorized with HTTP 401", o)
	}
}

func TestPythonHandlerUnitTests(t *testing.T) {
	cmd := exec.Command(requirePython(t), "-m", "unittest", "discover", "-s", "../../examples/handlers/python")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("python3 -m unittest: %v\n%s", err, out)
	}
}

func requirePython(t *testing.T) string {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not on PATH, and the Python handler's tests need it: install Python 3.11 or later (%v)", err)
	}
	return python
}

// registrationAt is examples/operators/memcached.yaml with its handler URL
// pointed at url, written as JSON to a temporary file.
func registrationAt(t *testing.T, url string) string {
	t.Helper()
	data, err := os.ReadFile("../../examples/operators/memcached.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return pointRegistrationAt(t, data, url)
}

// pointRegistrationAt writes the WebhookOperator in data, YAML or JSON,
// with its handler URL set to url, as JSON to a temporary file.
func pointRegistrationAt(t *testing.T, data []byte, url string) string {
	t.Helper()
	var op map[string]any
	data, err := yaml.YAMLToJSON(data)
	if err == nil {
		err = json.Unmarshal(data, &op)
	}
	if err == nil {
		err = unstructured.SetNestedField(op, url, "spec", "handler", "url")
	}
	if err == nil {
		data, err = json.Marshal(op)
	}
	path := filepath.Join(t.TempDir(), "operator.json")
	if err == nil {
		err = os.WriteFile(path, data, 0o600)
	}
	if err != nil {
		t.Fatalf("point the registration at %s: %v", url, err)
	}
	return path
}

// startPythonHandler runs memcached.py on a free port until the test ends,
// verifying signatures with the secrets in secretFiles, if any.
func startPythonHandler(t *testing.T, python string, secretFiles ...string) string {
	t.Helper()
	addr := freeAddr(t)
	args := []string{"../../examples/handlers/python/memcached.py", "--addr", addr}
	for _, f := range secretFiles {
		args = append(args, "--hmac-secret-file", f)
	}
	return startHandlerProcess(t, "the Python handler", addr, python, args...)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// startHandlerProcess runs a handler listening on addr until the test
// ends, then stops it with SIGTERM and expects a clean exit. It returns the
// handler's URL once its /healthz answers 200.
func startHandlerProcess(t *testing.T, what, addr, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if waitErr != nil {
				t.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", what, waitErr, logs)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop within 10s of SIGTERM\n%s", what, logs)
		}
	})

	url := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	deadline := time.After(15 * time.Second)
	for {
		if resp, err := client.Get(url + "/healthz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it was healthy: %v\n%s", what, waitErr, logs)
		case <-deadline:
			t.Fatalf("%s's /healthz did not answer 200 within 15s\n%s", what, logs)
		case <-ticker.C:
		}
	}
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
