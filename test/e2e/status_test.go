package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/inspect"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// failingFor is a handler that answers every callback with nothing to do,
// except create for one object, which fails with a retry an hour away.
type failingFor struct {
	*httptest.Server
	name  string
	mu    sync.Mutex
	calls []time.Time // create calls for name
}

func newFailingFor(t *testing.T, name string) *failingFor {
	h := &failingFor{name: name}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req callbacks.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if req.Event == callbacks.Event(spec.EventCreate) && req.Object.GetName() == h.name {
			h.mu.Lock()
			h.calls = append(h.calls, time.Now())
			h.mu.Unlock()
			_, _ = w.Write([]byte(`{"error": {"message": "database down", "retryAfter": "1h"}}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *failingFor) createCalls() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.calls...)
}

// cli runs the gateway binary with args against the shared cluster.
func cli(t *testing.T, bins binaries, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bins.gateway, append(args, "--kubeconfig", Kubeconfig())...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("gateway %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// One object's create fails with a retry an hour away: gateway status
// names exactly that object with its error and next retry, its detail
// agrees with the state annotation, and gateway reconcile has it called
// again at once, once.
func TestStatusShowsTheFailingObjectAndReconcileRetriesItOnce(t *testing.T) {
	t.Parallel()
	bins := buildBinaries(t)
	installCRDs(t)
	w := newWalk(t, memcachedResource, "Memcached")
	h := newFailingFor(t, "broken")
	file := operatorFile(t, "memcached.yaml", func(op *spec.WebhookOperator) {
		op.Spec.Watch.Namespaces = []string{w.ns}
		op.Spec.Handler.URL = h.URL
		op.Spec.Retry.MaxDelay = &spec.Duration{Duration: 2 * time.Hour}
	})
	startGateway(t, bins, file)
	w.create("fine", map[string]any{"size": int64(1)})
	broken := w.create("broken", map[string]any{"size": int64(1)})
	w.waitProgress("broken", "memcached", "create-deployment", "failed once", func(p *state.Progress) bool { return p != nil && p.Attempts == 1 })
	w.waitFinalizer("fine", "opgate.dev/memcached")

	var op inspect.Operator
	Eventually(t, rolloutTimeout, "gateway status memcached to list only broken", func(context.Context) (bool, string, error) {
		op = inspect.Operator{}
		if err := json.Unmarshal(cli(t, bins, "status", "memcached", "-f", file, "-o", "json"), &op); err != nil {
			return false, "", err
		}
		return op.Objects == 2 && len(op.Unsettled) == 1, fmt.Sprintf("%+v", op), nil
	})
	u := op.Unsettled[0]
	if u.Key() != w.ns+"/broken" || u.State != inspect.BackingOff || u.Failure == nil ||
		u.Failure.Callback != "create-deployment" || !strings.Contains(u.Failure.Message, "database down") || u.Failure.NextRetry == nil {
		t.Fatalf("unsettled = %+v (failure %+v), want %s/broken backing off in create-deployment with its error and next retry", u, u.Failure, w.ns)
	}
	text := string(cli(t, bins, "status", "memcached", "-f", file))
	if !strings.Contains(text, w.ns+"/broken") || strings.Contains(text, w.ns+"/fine") || !strings.Contains(text, "database down") {
		t.Errorf("gateway status memcached printed:\n%s", text)
	}

	var d inspect.Detail
	if err := json.Unmarshal(cli(t, bins, "status", "memcached", w.ns+"/broken", "-f", file, "-o", "json"), &d); err != nil {
		t.Fatal(err)
	}
	obj, err := w.get(t.Context(), "broken")
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Decode(obj.GetAnnotations()["opgate.dev/state.memcached"])
	if err != nil {
		t.Fatal(err)
	}
	p := st.Progress["create-deployment"]
	if d.UID != string(broken.GetUID()) || d.Failure == nil || d.Failure.Attempts != p.Attempts || !d.Failure.NextRetry.Equal(p.Next) ||
		d.Failure.Message != p.Message || d.Essence.Handled != st.Handled || d.Round == nil || d.Round.Event != st.Round.Event {
		t.Fatalf("status detail %+v (failure %+v) disagrees with the state annotation %+v (progress %+v)", d, d.Failure, st, p)
	}

	asked := time.Now()
	cli(t, bins, "reconcile", "memcached", w.ns+"/broken", "-f", file)
	Eventually(t, rolloutTimeout, "create called again for broken", func(context.Context) (bool, string, error) {
		n := len(h.createCalls())
		return n >= 2, fmt.Sprintf("%d calls", n), nil
	})
	t.Logf("called again %s after gateway reconcile", h.createCalls()[1].Sub(asked).Round(time.Millisecond))
	w.waitProgress("broken", "memcached", "create-deployment", "failed twice", func(p *state.Progress) bool { return p != nil && p.Attempts == 2 })
	if n := len(h.createCalls()); n != 2 {
		t.Errorf("create called %d times for broken, want 2: one reconcile request calls once", n)
	}
}

// With status.conditions: true, a converged Memcached (its timer removed,
// since a timer writes by design) is not written once in a minute: the
// gateway's status write neither repeats nor wakes its own watch.
func TestConvergedMemcachedWithConditionsIsNotWrittenWhileIdle(t *testing.T) {
	t.Parallel()
	bins := buildBinaries(t)
	installCRDs(t)
	w := newWalk(t, memcachedResource, "Memcached")
	handlerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	goMemcachedHandler(t, bins, handlerAddr, "").waitListening(t, handlerAddr)
	startGateway(t, bins, operatorFile(t, "memcached.yaml", func(op *spec.WebhookOperator) {
		op.Spec.Watch.Namespaces = []string{w.ns}
		op.Spec.Handler.URL = "http://" + handlerAddr
		op.Spec.Status = &spec.StatusSpec{Conditions: true}
		op.Spec.Callbacks = slices.DeleteFunc(op.Spec.Callbacks, func(cb spec.Callback) bool { return cb.ID == "backup" })
	}))
	const name = "idle-memcached"
	w.create(name, map[string]any{"size": int64(2)})
	w.waitPodNamesInStatus(name, "memcached_cr="+name, 2, "nodes", true)
	w.waitReconciled(name)

	obj, err := w.get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	watcher, err := w.res.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: obj.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()
	writes := 0
	for ev := range watcher.ResultChan() {
		if ev.Type == watch.Modified {
			writes++
			u, _ := ev.Object.(*unstructured.Unstructured)
			t.Logf("write while idle: annotations %v status %v", u.GetAnnotations(), u.Object["status"])
		}
	}
	if writes != 0 {
		t.Errorf("%d writes to a converged Memcached in a minute, want 0", writes)
	}
}
