package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// The guide's walkthrough (docs/walkthrough.md, `make demo`), step by step,
// against the full local cluster: the gateway and the example handlers run
// as processes, and every step asserts what the cluster really holds.

var (
	memcachedResource = schema.GroupVersionResource{Group: "cache.example.com", Version: "v1alpha1", Resource: "memcacheds"}
	nginxResource     = schema.GroupVersionResource{Group: "web.example.com", Version: "v1", Resource: "nginxservers"}
)

// timerInterval is the backup timer's interval in the tests' operator
// files: short, so that status.lastBackup comes within seconds.
const timerInterval = 3 * time.Second

// memcachedHandler starts a memcached handler listening on addr. secret,
// when not empty, is the HMAC secret it must check signatures with.
type memcachedHandler func(t *testing.T, bins binaries, addr, secret string) *process

func goMemcachedHandler(t *testing.T, bins binaries, addr, secret string) *process {
	if secret != "" {
		t.Fatal("the Go memcached handler is run without HMAC in these tests")
	}
	return startProcess(t, "memcached-go", nil, bins.memcached, "--addr", addr)
}

func pythonMemcachedHandler(t *testing.T, _ binaries, addr, secret string) *process {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not on the PATH (%v): the walkthrough with the Python handler needs it; install Python 3", err)
	}
	file := filepath.Join(t.TempDir(), "hmac-secret")
	if err := os.WriteFile(file, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return startProcess(t, "memcached-python", nil, python, "examples/handlers/python/memcached.py",
		"--addr", addr, "--hmac-secret-file", file)
}

// TestMemcachedWalkthrough plays the guide's Memcached story with each
// handler: create size 3 → a Deployment of 3 ready pods and their names in
// status.nodes; scale to 5 and back to 3; the backup timer sets
// status.lastBackup; delete → the finalizer is released and the garbage
// collector removes the Deployment and the pods.
func TestMemcachedWalkthrough(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler memcachedHandler
		hmac    bool
	}{
		{name: "go", handler: goMemcachedHandler},
		{name: "python", handler: pythonMemcachedHandler, hmac: true},
	}
	bins := buildBinaries(t)
	installCRDs(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWalk(t, memcachedResource, "Memcached")
			handlerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			var auth *spec.AuthSpec
			var secret string
			if tt.hmac {
				secret = randomSecret(t)
				auth = &spec.AuthSpec{HMACSecretRef: w.createSecret("memcached-hook", "secret", secret)}
			}
			h := tt.handler(t, bins, handlerAddr, secret)
			h.waitListening(t, handlerAddr)
			if tt.hmac {
				assertRefusesUnsigned(t, handlerAddr)
			}
			startGateway(t, bins, operatorFile(t, "memcached.yaml", func(op *spec.WebhookOperator) {
				op.Spec.Watch.Namespaces = []string{w.ns}
				op.Spec.Handler.URL = "http://" + handlerAddr
				op.Spec.Handler.Auth = auth
				setTimerInterval(t, op, "backup", timerInterval)
				op.Spec.Status = &spec.StatusSpec{Conditions: true}
			}), "--secret-namespace", w.ns) // the walk's namespace holds the HMAC Secret
			playMemcached(w)
		})
	}
}

func playMemcached(w *walk) {
	const name = "example-memcached"
	w.step("kubectl apply: Memcached example-memcached, size 3")
	mc := w.create(name, map[string]any{"size": int64(3)})
	w.waitFinalizer(name, "opgate.dev/memcached")
	for i, size := range []int{3, 5, 3} {
		if i > 0 {
			w.step("kubectl patch: size %d", size)
			w.patchSpec(name, map[string]any{"size": int64(size)})
		}
		w.waitDeployment(name, mc.GetUID(), int32(size), "memcached:1.4.36", map[string]string{"app": "memcached", "memcached_cr": name})
		w.waitPodNamesInStatus(name, "memcached_cr="+name, size, "nodes", true)
	}
	w.step("the backup timer sets status.lastBackup, and again every %s", timerInterval)
	var first time.Time
	w.waitStatus(name, "lastBackup", "set to an RFC 3339 time", func(v any) bool {
		s, _ := v.(string)
		var err error
		first, err = time.Parse(time.RFC3339, s)
		return err == nil
	})
	w.waitStatus(name, "lastBackup", "later than "+first.Format(time.RFC3339), func(v any) bool {
		s, _ := v.(string)
		at, err := time.Parse(time.RFC3339, s)
		return err == nil && at.After(first)
	})
	w.step("status.conditions: observedGeneration follows metadata.generation, Reconciled=True")
	w.waitReconciled(name)
	for _, e := range []struct{ reason, text string }{
		{"Created", "with 3 replicas"},
		{"Scaled", "5 replicas"},
		{"Scaled", "3 replicas"},
		{"Backup", "backed up"},
	} {
		w.waitEvent(mc.GetUID(), "opgate-handler", corev1.EventTypeNormal, e.reason, e.text)
	}
	w.step("kubectl delete: the finalizer is released, the garbage collector removes the rest")
	w.deleteAndWaitGone(name, "memcached_cr="+name)
	w.step("all gone")
}

// TestNginxWalkthrough plays the guide's NginxServer story: create 2
// replicas of nginx:1.19.6 → 2/2 and status; update to 3 replicas of
// nginx:1.20.0 → the Deployment rolls; an empty image tag → a temporary
// error retried with backoff, Warning Events and nothing applied; an
// invalid image → a permanent error; delete → everything is gone.
func TestNginxWalkthrough(t *testing.T) {
	t.Parallel()
	bins := buildBinaries(t)
	installCRDs(t)
	w := newWalk(t, nginxResource, "NginxServer")
	handlerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProcess(t, "nginx", nil, bins.nginx, "--addr", handlerAddr).waitListening(t, handlerAddr)
	startGateway(t, bins, operatorFile(t, "nginx.yaml", func(op *spec.WebhookOperator) {
		op.Spec.Watch.Namespaces = []string{w.ns}
		op.Spec.Handler.URL = "http://" + handlerAddr
	}))

	const name = "example-nginx"
	w.step("kubectl apply: NginxServer example-nginx, 2 replicas of nginx:1.19.6")
	ngx := w.create(name, map[string]any{"replicas": int64(2), "image": "nginx:1.19.6"})
	w.waitFinalizer(name, "opgate.dev/nginx")
	w.waitDeployment(name, ngx.GetUID(), 2, "nginx:1.19.6", nil)
	w.waitPodNamesInStatus(name, w.deploymentSelector(name), 2, "podNames", false)
	w.waitStatus(name, "availableReplicas", "= 2", equalsInt(2))

	w.step("kubectl patch: 3 replicas of nginx:1.20.0")
	w.patchSpec(name, map[string]any{"replicas": int64(3), "image": "nginx:1.20.0"})
	w.waitDeployment(name, ngx.GetUID(), 3, "nginx:1.20.0", nil)
	w.waitPodNamesInStatus(name, w.deploymentSelector(name), 3, "podNames", false)
	w.waitStatus(name, "availableReplicas", "= 3", equalsInt(3))

	w.step("kubectl patch: an image without a tag is a temporary error, retried")
	w.patchSpec(name, map[string]any{"image": "nginx:"})
	w.waitEvent(ngx.GetUID(), "opgate", corev1.EventTypeWarning, "HandlerError", "image tag is empty")
	w.waitProgress(name, "nginx", "update", "retried at least twice", func(p *state.Progress) bool {
		return p != nil && p.Attempts >= 2 && !p.Failed
	})
	w.waitDeployment(name, ngx.GetUID(), 3, "nginx:1.20.0", nil) // nothing of the failing answer applied

	w.step("kubectl patch: an invalid image is a permanent error, not retried")
	w.patchSpec(name, map[string]any{"image": "NOT A VALID IMAGE"})
	w.waitEvent(ngx.GetUID(), "opgate", corev1.EventTypeWarning, "HandlerError", "not a valid image reference")
	w.waitProgress(name, "nginx", "update", "failed permanently", func(p *state.Progress) bool { return p != nil && p.Failed })

	w.step("kubectl patch: a valid image again; the Deployment follows")
	w.patchSpec(name, map[string]any{"image": "nginx:1.19.6"})
	w.waitDeployment(name, ngx.GetUID(), 3, "nginx:1.19.6", nil)
	w.waitProgress(name, "nginx", "update", "no failure left", func(p *state.Progress) bool { return p == nil })

	w.step("kubectl delete: the Deployment and its pods are removed")
	w.deleteAndWaitGone(name, w.deploymentSelector(name))
	w.step("all gone")
}

// setTimerInterval sets the interval of timer callback id, failing the
// test if the operator has no such callback.
func setTimerInterval(t *testing.T, op *spec.WebhookOperator, id string, interval time.Duration) {
	t.Helper()
	for i := range op.Spec.Callbacks {
		if op.Spec.Callbacks[i].ID == id {
			op.Spec.Callbacks[i].Interval = &spec.Duration{Duration: interval}
			return
		}
	}
	t.Fatalf("operator %s has no callback %q", op.Name, id)
}

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// createSecret creates a Secret holding value under key in the walk's
// namespace and returns a reference to it.
func (w *walk) createSecret(name, key, value string) *spec.SecretKeyRef {
	w.t.Helper()
	_, err := w.kube.CoreV1().Secrets(w.ns).Create(w.t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data:       map[string][]byte{key: []byte(value)},
	}, metav1.CreateOptions{})
	if err != nil {
		w.t.Fatalf("create secret %s/%s: %v", w.ns, name, err)
	}
	return &spec.SecretKeyRef{Namespace: w.ns, Name: name, Key: key}
}

// equalsInt is a waitStatus check for an integer value.
func equalsInt(want int64) func(v any) bool {
	return func(v any) bool { n, ok := v.(int64); return ok && n == want }
}

// assertRefusesUnsigned checks that the handler on addr answers 401 to a
// callback without a signature, so that the walkthrough passing proves the
// gateway signed every request.
func assertRefusesUnsigned(t *testing.T, addr string) {
	t.Helper()
	body := `{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"unsigned","event":"sync",` +
		`"operator":"memcached","callback":"status","attempt":1,"object":{"metadata":{"name":"x"}}}`
	resp, err := http.Post("http://"+addr+"/sync", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST an unsigned callback to %s: %v", addr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an unsigned callback to the handler with an HMAC secret: status %d, want 401", resp.StatusCode)
	}
}
