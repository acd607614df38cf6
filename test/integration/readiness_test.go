package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/internal/testenv"
)

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// runGateway runs a gateway against c until the test ends; opts.Registerer
// and opts.Logger are filled in when empty.
func runGateway(t *testing.T, c *rest.Config, opts runner.Options) *runner.Gateway {
	t.Helper()
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	gw, err := runner.New(c, opts)
	if err != nil {
		t.Fatalf("wire gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("gateway did not stop within 30s")
		}
	})
	return gw
}

// limitedConfig returns cfg impersonating a user bound to a ClusterRole
// that allows everything the gateway needs except listing and watching
// Deployments, and a function that grants those too.
func limitedConfig(t *testing.T) (c *rest.Config, grantDeploymentList func()) {
	t.Helper()
	all := []string{"*"}
	return impersonatedConfig(t, "opgate-limited", []rbacv1.PolicyRule{
		{APIGroups: []string{"", "test.opgate.dev", spec.Group, "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "create", "update", "patch", "delete"}},
	}, 2)
}

// impersonatedConfig returns cfg impersonating a new user bound to a
// ClusterRole of rules, and a function that grants every verb in
// rules[grant].
func impersonatedConfig(t *testing.T, prefix string, rules []rbacv1.PolicyRule, grant int) (*rest.Config, func()) {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1000000)
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	ctx := context.Background()
	roles := kube(t).RbacV1().ClusterRoles()
	if _, err := roles.Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ClusterRole: %v", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}},
	}
	if _, err := kube(t).RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ClusterRoleBinding: %v", err)
	}
	t.Cleanup(func() {
		_ = kube(t).RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = roles.Delete(ctx, name, metav1.DeleteOptions{})
	})
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: name}
	grantAll := func() {
		eventually(t, 10*time.Second, func() error {
			r, err := roles.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			r.Rules[grant].Verbs = []string{"*"}
			_, err = roles.Update(ctx, r, metav1.UpdateOptions{})
			return err
		})
	}
	return c, grantAll
}

func TestOperatorForbiddenToListChildrenIsNotReadyUntilAllowed(t *testing.T) {
	const forbidden = `cannot list resource "deployments" in API group "apps"`
	for _, mode := range []string{"file", "registry"} {
		t.Run(mode, func(t *testing.T) {
			ns := newNamespace(t)
			limited, grant := limitedConfig(t)
			h := newHandler(t, ok(nil))
			name := "forbidden-" + mode
			var ops []*spec.WebhookOperator
			if mode == "file" {
				ops = append(ops, operatorFor(t, name, ns, h.URL, func(s *spec.OperatorSpec) {
					s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
				}))
			}
			gw := runGateway(t, limited, runner.Options{Operators: ops})
			if mode == "registry" {
				createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  children: [{apiVersion: apps/v1, kind: Deployment}]
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, name, ns, h.URL))
			}
			createWidget(t, ns, "example", 1)
			eventually(t, 30*time.Second, func() error {
				err := gw.Ready()
				if err == nil || !strings.Contains(err.Error(), "operator "+name) || !strings.Contains(err.Error(), forbidden) {
					return fmt.Errorf("Ready() = %v, want an error naming operator %s and %q", err, name, forbidden)
				}
				return nil
			})
			if mode == "registry" {
				waitReady(t, name, "False/Forbidden")
				// The condition carries the message of the request that failed
				// last: the reflector's list, or a watch it tried meanwhile.
				if c := readyCondition(t, name); !strings.Contains(c, forbidden) && !strings.Contains(c, strings.Replace(forbidden, "list", "watch", 1)) {
					t.Errorf("Ready = %s, want the API server's message %q (or its watch twin)", c, forbidden)
				}
			}
			if n := len(h.calls("create")); n != 0 {
				t.Fatalf("create called %d times before the caches synced", n)
			}

			grant() // the informers retry by themselves: no restart needed
			eventually(t, 90*time.Second, func() error {
				if err := gw.Ready(); err != nil {
					return fmt.Errorf("still not ready after list was allowed: %v", err)
				}
				return called(h, "create", 1)
			})
			if mode == "registry" {
				waitReady(t, name, "True/Running")
			}
		})
	}
}

func TestRegistryWithoutCRDIsNotReadyUntilCRDInstalled(t *testing.T) {
	bare, err := testenv.Start() // a control plane without opgate's CRDs
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bare.Stop() })
	gw := runGateway(t, bare.Config, runner.Options{})
	eventually(t, 30*time.Second, func() error {
		if err := gw.Ready(); err == nil || !strings.Contains(err.Error(), "install crds/ first") {
			return fmt.Errorf("Ready() = %v, want an error saying to install crds/ first", err)
		}
		return nil
	})

	raw, err := os.ReadFile("../../crds/opgate.dev_webhookoperators.yaml")
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &crd.Object); err != nil {
		t.Fatal(err)
	}
	client := dynamic.NewForConfigOrDie(bare.Config)
	if _, err := client.Resource(crdGVR).Create(context.Background(), crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("install the WebhookOperator CRD: %v", err)
	}
	eventually(t, 60*time.Second, func() error {
		if err := gw.Ready(); err != nil {
			return fmt.Errorf("not ready after the CRD was installed: %v", err)
		}
		return nil
	})

	// And it works, without a restart: an operator of ConfigMaps runs.
	var mu sync.Mutex
	seen := map[string]bool{}
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		mu.Lock()
		defer mu.Unlock()
		seen[req.Object.GetName()] = true
		return 200, nil
	})
	op := &unstructured.Unstructured{}
	_ = yaml.Unmarshal([]byte(fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: configmaps}
spec:
  watch: {apiVersion: v1, kind: ConfigMap, namespaces: [default], labelSelector: {matchLabels: {app: late-crd}}}
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, h.URL)), &op.Object)
	eventually(t, 20*time.Second, func() error {
		_, err := client.Resource(engine.OperatorResource).Create(context.Background(), op, metav1.CreateOptions{})
		return err
	})
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "seen", "namespace": "default", "labels": map[string]any{"app": "late-crd"}}}}
	if _, err := client.Resource(configMaps).Namespace("default").Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !seen["seen"] {
			return fmt.Errorf("the ConfigMap operator registered after the CRD appeared never called its handler")
		}
		return nil
	})
}

// An operator whose CRD is deleted at runtime is KindNotFound, as one
// started without it is: its registration's own fault, which leaves the
// gateway in service (docs/operations.md), and it runs again by itself
// once the CRD is back.
func TestDeletedCRDOfOneOperatorLeavesTheGatewayReady(t *testing.T) {
	crd := plainCRD(t, "gone.opgate.dev", "Nut")
	createCRD(t, crd)
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	gw := runGateway(t, cfg, runner.Options{})
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: nuts}
spec:
  watch: {apiVersion: gone.opgate.dev/v1, kind: Nut, namespaces: [%s]}
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, ns, h.URL))
	waitReady(t, "nuts", "True/Running")
	eventually(t, 20*time.Second, gw.Ready)

	deleteCRD(t, crd.GetName())
	eventually(t, 60*time.Second, func() error {
		if c := readyCondition(t, "nuts"); !strings.HasPrefix(c, "False/") {
			return fmt.Errorf("Ready = %s, want False once the CRD is gone", c)
		}
		return nil
	})
	const apiServerSays = "the server could not find the requested resource"
	if c := readyCondition(t, "nuts"); !strings.HasPrefix(c, "False/KindNotFound") || !strings.Contains(c, apiServerSays) {
		t.Errorf("Ready = %s, want False/KindNotFound with the API server's %q", c, apiServerSays)
	}
	if err := gw.Ready(); err != nil {
		t.Errorf("the gateway is out of service because one operator's CRD was deleted: %v", err)
	}

	createCRD(t, crd)
	eventually(t, 60*time.Second, func() error {
		if c := readyCondition(t, "nuts"); !strings.HasPrefix(c, "True/Running") {
			return fmt.Errorf("Ready = %s, want True/Running once the CRD is back", c)
		}
		return nil
	})
}

// A gateway that may list and watch WebhookOperators but not patch them
// cannot add its finalizer to one, so it never starts its operator: it is
// not ready, naming the operator and the refusal, until allowed.
func TestRegistryForbiddenToAddItsFinalizerIsNotReadyUntilAllowed(t *testing.T) {
	ns := newNamespace(t)
	all := []string{"*"}
	limited, grant := impersonatedConfig(t, "opgate-nopatch", []rbacv1.PolicyRule{
		{APIGroups: []string{spec.Group}, Resources: []string{spec.Resource}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{spec.Group}, Resources: []string{spec.Resource + "/status"}, Verbs: all},
		{APIGroups: []string{"", "apps", "test.opgate.dev", "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	}, 0)
	h := newHandler(t, ok(nil))
	gw := runGateway(t, limited, runner.Options{})
	const name = "nopatch"
	goneFirst(t, name)
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, name, ns, h.URL))
	const refused = `cannot patch resource "webhookoperators"`
	eventually(t, 30*time.Second, func() error {
		err := gw.Ready()
		if err == nil || !strings.Contains(err.Error(), "operator "+name) || !strings.Contains(err.Error(), refused) {
			return fmt.Errorf("Ready() = %v, want an error naming operator %s and %q", err, name, refused)
		}
		return nil
	})
	if views := gw.View(); len(views) != 0 {
		t.Fatalf("%d operators run without the registry's finalizer on their WebhookOperator", len(views))
	}

	grant() // the sync retries by itself: no restart needed
	eventually(t, 90*time.Second, func() error {
		if err := gw.Ready(); err != nil {
			return fmt.Errorf("still not ready after patch was allowed: %v", err)
		}
		return nil
	})
	waitReady(t, name, "True/Running")
}

// At a start (as at a leader takeover) the registry is ready once every
// registered operator runs, its caches synced, not from the moment the
// WebhookOperator cache synced, before the operators even started. A
// registration refused for its own fault (an invalid spec) runs nothing
// and leaves the gateway ready.
func TestRegistryIsNotReadyBeforeItsRegisteredOperatorsRun(t *testing.T) {
	for _, tt := range []struct {
		name, extra string
		status      string // the WebhookOperator's Ready
		runs        bool
	}{
		{name: "valid", status: "True/Running", runs: true},
		{name: "invalid-spec", extra: "    - {id: tick, events: [timer]}", status: "False/InvalidSpec"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(nil))
			first := runGateway(t, cfg, runner.Options{})
			name := "registered-before-start-" + tt.name
			createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  children: [{apiVersion: apps/v1, kind: Deployment}]
  handler: {url: %q}
  callbacks:
    - {id: create, events: [create]}
%s
`, name, ns, h.URL, tt.extra))
			waitReady(t, name, tt.status)
			eventually(t, 30*time.Second, first.Ready)

			gw := runGateway(t, cfg, runner.Options{})
			goneFirst(t, name)
			deadline := time.Now().Add(60 * time.Second)
			for gw.Ready() != nil {
				if time.Now().After(deadline) {
					t.Fatalf("not ready within 60s: %v", gw.Ready())
				}
				time.Sleep(time.Millisecond) // a poll: the window looked for is short
			}
			for _, v := range gw.View() {
				if v.Operator.Name != name {
					continue
				}
				if !tt.runs {
					t.Fatalf("operator %s runs", name)
				}
				if !v.Synced {
					t.Fatalf("ready while operator %s has not synced its caches (%s: %s)", name, v.Reason, v.Message)
				}
				return
			}
			if tt.runs {
				t.Fatalf("ready while operator %s has not been started", name)
			}
		})
	}
}

// goneFirst deletes the WebhookOperator called name when the test ends,
// before the gateways started earlier stop, and waits until they let it
// go: one left holding the registry's finalizer stays in the cluster.
func goneFirst(t *testing.T, name string) {
	t.Cleanup(func() {
		err := dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete WebhookOperator %s: %v", name, err)
			return
		}
		waitOperatorGone(t, name)
	})
}
