package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/opgate/opgate/gateway/rbac"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

func discoveryResolver(t *testing.T) rbac.Resolver {
	t.Helper()
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rbac.MapperResolver{Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}
}

// The rules `gateway rbac --from-cluster` prints for a WebhookOperator,
// resolved by the API server's discovery, plus the gateway's base rules,
// are enough for a gateway impersonating a user with nothing else.
func TestRBACFromClusterRulesAreEnoughToRunTheOperator(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	name := "rbac-from-cluster"
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  children: [{apiVersion: apps/v1, kind: Deployment}]
  related: [{apiVersion: v1, kind: ConfigMap}]
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, name, ns, h.URL))
	all, err := rbac.ClusterOperators(context.Background(), dyn(t))
	if err != nil {
		t.Fatal(err)
	}
	ops := slices.DeleteFunc(all, func(op *spec.WebhookOperator) bool { return op.Name != name })
	rules, err := rbac.For(ops, discoveryResolver(t), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []rbacv1.PolicyRule{
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets/status"}, Verbs: []string{"get", "patch", "update"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}},
	} {
		if !slices.ContainsFunc(rules.Cluster, func(r rbacv1.PolicyRule) bool { return fmt.Sprint(r) == fmt.Sprint(want) }) {
			t.Errorf("rules %v lack %v", rules.Cluster, want)
		}
	}

	base := rbac.BaseRules()
	granted := slices.Concat(base.Cluster, base.Namespace, base.Secrets, rules.Cluster)
	limited, _ := impersonatedConfig(t, "opgate-rbac", granted, 0)
	runGateway(t, limited, runner.Options{})
	waitReady(t, name, "True/Running")
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, func() error { return called(h, "create", 1) })
}

func TestRBACDiscoveryNamesAKindTheServerDoesNotServe(t *testing.T) {
	op := &spec.WebhookOperator{}
	op.Name = "unserved"
	op.Spec.Watch = spec.WatchSpec{APIVersion: "nowhere.example.com/v1", Kind: "Ghost"}
	_, err := rbac.For([]*spec.WebhookOperator{op}, discoveryResolver(t), false)
	if !errors.Is(err, rbac.ErrUnresolved) {
		t.Fatalf("err = %v, want ErrUnresolved naming the kind", err)
	}
	t.Log(err)
}
