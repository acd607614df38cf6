package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/internal/testenv"
)

const memcachedFile = "../../examples/operators/memcached.yaml"

// registerReady creates the WebhookOperator of file as the cluster object,
// its Ready condition True as a running gateway would have written it.
func registerReady(t *testing.T, cfg *rest.Config, file string) {
	t.Helper()
	ctx := context.Background()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &obj.Object); err != nil {
		t.Fatal(err)
	}
	res := dynamic.NewForConfigOrDie(cfg).Resource(engine.OperatorResource)
	created, err := res.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create WebhookOperator: %v", err)
	}
	cond := map[string]any{"type": "Ready", "status": "True", "reason": "Watching", "message": "watching",
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}
	if err := unstructured.SetNestedSlice(created.Object, []any{cond}, "status", "conditions"); err != nil {
		t.Fatal(err)
	}
	if _, err := res.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set the WebhookOperator's Ready: %v", err)
	}
}

// An operator whose objects status cannot list is not reported as having
// none: the counts are unknown, the error names the operator, its kind and
// the API server's words, and the command fails.
func TestStatusSaysWhyItCouldNotListTheWatchedKind(t *testing.T) {
	cfg := startAPIServer(t)
	registerReady(t, cfg, memcachedFile)
	const user = "operators-only"
	grant(t, cfg, user, rbacv1.PolicyRule{APIGroups: []string{"opgate.dev"}, Resources: []string{"webhookoperators"}, Verbs: []string{"get", "list"}})
	admin := writeKubeconfig(t, cfg, "", "")
	limited := writeKubeconfig(t, cfg, user, "")
	unserved := filepath.Join(t.TempDir(), "unserved.yaml")
	if err := os.WriteFile(unserved, []byte(`apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: gadgets}
spec:
  watch: {apiVersion: nowhere.example.com/v1, kind: Gadget}
  handler: {url: "http://127.0.0.1:8081"}
  callbacks: [{id: create, events: [create]}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	const forbidden = `cannot list resource "memcacheds" in API group "cache.example.com"`
	tests := []struct {
		name    string
		args    []string
		wantOut []string
		wantErr []string // empty: the command succeeds
		notErr  string
	}{
		{"listed: the counts", []string{"status", "memcached", "--kubeconfig", admin},
			[]string{"Ready True, 0 objects, 0 failing", "Every object is settled or pending."}, nil, ""},
		{"forbidden, one operator", []string{"status", "memcached", "--kubeconfig", limited},
			[]string{"memcached: cache.example.com/v1alpha1/Memcached, Ready True, ? objects, ? failing, ? waiting on a finalizer"},
			[]string{"memcached", "Memcached", forbidden}, "not served"},
		{"forbidden, every operator", []string{"status", "--kubeconfig", limited},
			[]string{"memcached  cache.example.com/v1alpha1/Memcached  True   ?        ?        ?"},
			[]string{"memcached", "Memcached", forbidden}, "not served"},
		{"kind not served", []string{"status", "-f", unserved, "--kubeconfig", admin},
			[]string{"gadgets   nowhere.example.com/v1/Gadget  Unknown  ?        ?        ?"},
			[]string{"gadgets", "Gadget", "is not served by this cluster"}, ""},
		{"API server unreachable", []string{"status", "memcached", "-f", memcachedFile, "--kubeconfig", kubeconfigFile(t)},
			[]string{"? objects"},
			[]string{"memcached", "Memcached", "connection refused"}, "not served"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := execute(t, tt.args...)
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("error = %v, want none", err)
				}
				return
			}
			if strings.Contains(out, "Every object is settled") {
				t.Errorf("output claims every object is settled:\n%s", out)
			}
			if err == nil {
				t.Fatal("no error, want the command to fail")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if tt.notErr != "" && strings.Contains(err.Error(), tt.notErr) {
				t.Errorf("error %q says %q", err, tt.notErr)
			}
		})
	}
}

// Scripts reading -o json see the error beside unknown counts.
func TestStatusJSONCarriesTheListError(t *testing.T) {
	out, _, err := execute(t, "status", "memcached", "-f", memcachedFile, "--kubeconfig", kubeconfigFile(t), "-o", "json")
	if err == nil {
		t.Fatalf("no error, want the command to fail; printed:\n%s", out)
	}
	var got struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got.Name != "memcached" || !strings.Contains(got.Error, "connection refused") {
		t.Errorf("printed %s, want operator memcached with the listing's error", out)
	}
}

// commandsReadingOperators are the status and reconcile commands that
// read WebhookOperator objects first.
var commandsReadingOperators = [][]string{
	{"status"},
	{"status", "memcached"},
	{"status", "memcached", "default/m"},
	{"reconcile", "memcached", "default/m"},
}

// A kubeconfig pointing at an HTTP server that is not a Kubernetes API
// server (a wrong port, a proxy) gets 404 for everything: status and
// reconcile must say so, not send the user off to install the CRD.
func TestStatusAndReconcileSayAServerThatIsNotKubernetesIsNot(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	kubeconfig := writeKubeconfig(t, &rest.Config{Host: srv.URL}, "", "")
	for _, args := range commandsReadingOperators {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, _, err := execute(t, append(args, "--kubeconfig", kubeconfig)...)
			if err == nil || !strings.Contains(err.Error(), srv.URL+" is not a Kubernetes API server") || strings.Contains(err.Error(), "CRD is not installed") {
				t.Fatalf("error = %v; want one saying %s is not a Kubernetes API server", err, srv.URL)
			}
		})
	}
}

// Without the WebhookOperator CRD, a real API server answers 404 too, and
// its discovery says why: the CRD is not installed.
func TestStatusAndReconcileSayTheCRDIsNotInstalled(t *testing.T) {
	env := testenv.StartForTest(t)
	kubeconfig := writeKubeconfig(t, env.Config, "", "")
	for _, args := range commandsReadingOperators {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, _, err := execute(t, append(args, "--kubeconfig", kubeconfig)...)
			if err == nil || !strings.Contains(err.Error(), "the WebhookOperator CRD is not installed in this cluster") {
				t.Fatalf("error = %v; want one saying the WebhookOperator CRD is not installed", err)
			}
		})
	}
}
