package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/internal/testenv"
)

// createOperator creates memcached.yaml's WebhookOperator under name, with
// labels, the gateway's finalizer and a Ready condition as a running
// gateway would have left them.
func createOperator(t *testing.T, cfg *rest.Config, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	b, err := os.ReadFile(memcachedFile)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &obj.Object); err != nil {
		t.Fatal(err)
	}
	obj.SetName(name)
	obj.SetLabels(labels)
	obj.SetFinalizers([]string{engine.RegistryFinalizer})
	res := dynamic.NewForConfigOrDie(cfg).Resource(engine.OperatorResource)
	created, err := res.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create WebhookOperator %s: %v", name, err)
	}
	cond := map[string]any{"type": "Ready", "status": "True", "reason": "Running", "message": "watching Memcached",
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}
	if err := unstructured.SetNestedSlice(created.Object, []any{cond}, "status", "conditions"); err != nil {
		t.Fatal(err)
	}
	if _, err := res.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set WebhookOperator %s's Ready: %v", name, err)
	}
}

// releaseWhenDeleted plays the gateway for the named operators: once one
// is being deleted, it removes the gateway's finalizer, as the gateway
// does after releasing the operator's objects. It stops when the test ends.
func releaseWhenDeleted(t *testing.T, cfg *rest.Config, names ...string) {
	t.Helper()
	res := dynamic.NewForConfigOrDie(cfg).Resource(engine.OperatorResource)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		pending := slices.Clone(names)
		_ = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			pending = slices.DeleteFunc(pending, func(name string) bool {
				op, err := res.Get(ctx, name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return true
				}
				if err != nil || op.GetDeletionTimestamp() == nil {
					return false
				}
				op.SetFinalizers(nil)
				_, err = res.Update(ctx, op, metav1.UpdateOptions{})
				return err == nil
			})
			return len(pending) == 0, nil
		})
	}()
}

func operatorNames(t *testing.T, cfg *rest.Config) []string {
	t.Helper()
	list, err := dynamic.NewForConfigOrDie(cfg).Resource(engine.OperatorResource).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, op := range list.Items {
		names = append(names, op.GetName())
	}
	slices.Sort(names)
	return names
}

// The chart's pre-delete hook: remove-operators deletes the release's
// WebhookOperators and returns once the gateway has released them; one
// the gateway does not release fails it at the timeout, named with its
// finalizer and Ready condition; nothing matching is success at once.
// The command runs as a user with only the hook's rules (list and watch,
// delete by name).
func TestRemoveOperatorsWaitsForTheGatewayToReleaseThem(t *testing.T) {
	cfg := startAPIServer(t)
	const user = "uninstall-hook"
	grant(t, cfg, user,
		rbacv1.PolicyRule{APIGroups: []string{"opgate.dev"}, Resources: []string{"webhookoperators"}, Verbs: []string{"list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"opgate.dev"}, Resources: []string{"webhookoperators"}, Verbs: []string{"get", "delete"},
			ResourceNames: []string{"released-a", "released-b", "held"}})
	kc := writeKubeconfig(t, cfg, user, "")
	rel := map[string]string{"app.kubernetes.io/instance": "rel"}
	createOperator(t, cfg, "released-a", rel)
	createOperator(t, cfg, "released-b", rel)
	createOperator(t, cfg, "held", map[string]string{"app.kubernetes.io/instance": "held"})
	createOperator(t, cfg, "other-release", map[string]string{"app.kubernetes.io/instance": "other"})
	releaseWhenDeleted(t, cfg, "released-a", "released-b")
	t.Cleanup(func() { releaseWhenDeleted(t, cfg, "held") })

	tests := []struct {
		name      string
		args      []string
		wantOut   []string
		wantErr   []string // empty: success
		wantLeft  []string // the operators after it
		maxLength time.Duration
	}{
		{"nothing matches: success at once", []string{"-l", "app.kubernetes.io/instance=none"},
			[]string{"no WebhookOperator matching app.kubernetes.io/instance=none"}, nil,
			[]string{"held", "other-release", "released-a", "released-b"}, 2 * time.Second},
		{"a name the selector does not match is left alone", []string{"other-release", "-l", "app.kubernetes.io/instance=rel"},
			[]string{"no WebhookOperator named other-release and matching app.kubernetes.io/instance=rel"}, nil,
			[]string{"held", "other-release", "released-a", "released-b"}, 2 * time.Second},
		{"released by the gateway: waited for, then success", []string{"-l", "app.kubernetes.io/instance=rel"},
			[]string{"waiting for WebhookOperator released-a to go (finalizers [opgate.dev/gateway])", "waiting for WebhookOperator released-b",
				"2 WebhookOperator(s) removed"}, nil,
			[]string{"held", "other-release"}, 20 * time.Second},
		{"held: fails at the timeout, naming it", []string{"held", "--timeout", "2s"},
			[]string{"waiting for WebhookOperator held"},
			[]string{"1 WebhookOperator(s) still there after 2s", "held: finalizers [opgate.dev/gateway]; Ready True/Running: watching Memcached", "is it running"},
			[]string{"held", "other-release"}, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, _, err := execute(t, append([]string{"remove-operators", "--kubeconfig", kc}, tt.args...)...)
			if took := time.Since(start); took > tt.maxLength {
				t.Errorf("took %s, want at most %s", took, tt.maxLength)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			switch {
			case len(tt.wantErr) == 0 && err != nil:
				t.Errorf("error = %v, want none; printed:\n%s", err, out)
			case len(tt.wantErr) > 0 && err == nil:
				t.Errorf("no error, want the command to fail; printed:\n%s", out)
			}
			for _, want := range tt.wantErr {
				if err != nil && !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if got := operatorNames(t, cfg); !slices.Equal(got, tt.wantLeft) {
				t.Errorf("WebhookOperators after it: %v, want %v", got, tt.wantLeft)
			}
		})
	}
}

// With neither names nor a selector the command refuses, rather than
// delete every WebhookOperator of the cluster.
func TestRemoveOperatorsRefusesToSelectEveryOperator(t *testing.T) {
	_, _, err := execute(t, "remove-operators", "--kubeconfig", kubeconfigFile(t))
	if err == nil || !strings.Contains(err.Error(), "give the WebhookOperators' NAMEs or -l SELECTOR") {
		t.Fatalf("error = %v, want a refusal asking for names or a selector", err)
	}
}

// Without the WebhookOperator CRD there is no WebhookOperator to remove:
// helm uninstall must not be blocked by a CRD deleted before it. The
// hook's rules are enough to tell (discovery is open to every user).
func TestRemoveOperatorsSucceedsWithoutTheCRD(t *testing.T) {
	env := testenv.StartForTest(t)
	const user = "uninstall-hook"
	grant(t, env.Config, user,
		rbacv1.PolicyRule{APIGroups: []string{"opgate.dev"}, Resources: []string{"webhookoperators"}, Verbs: []string{"list", "watch"}})
	out, _, err := execute(t, "remove-operators", "-l", "app.kubernetes.io/instance=rel", "--kubeconfig", writeKubeconfig(t, env.Config, user, ""))
	if err != nil || !strings.Contains(out, "the WebhookOperator CRD is not installed") {
		t.Fatalf("error = %v, printed %q; want success saying the CRD is not installed", err, out)
	}
}

// A kubeconfig pointing at an HTTP server that is not a Kubernetes API
// server (a wrong port, a proxy) gets 404 for everything: that is not "the
// CRD is not installed", and the chart's uninstall hook must not pass on
// it, deleting the gateway with operators' finalizers still held.
func TestRemoveOperatorsFailsAgainstAServerThatIsNotKubernetes(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	out, _, err := execute(t, "remove-operators", "-l", "app.kubernetes.io/instance=rel", "--timeout", "10s",
		"--kubeconfig", writeKubeconfig(t, &rest.Config{Host: srv.URL}, "", ""))
	if err == nil || !strings.Contains(err.Error(), "not a Kubernetes API server") || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("error = %v, printed %q; want a failure saying %s is not a Kubernetes API server", err, out, srv.URL)
	}
}
