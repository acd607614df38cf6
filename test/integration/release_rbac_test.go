package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/rbac"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// namespaceScopedConfig impersonates a new user granted what `gateway rbac
// --from-cluster --namespace-scoped` prints for the WebhookOperator called
// name, as an install with the chart's rbac.namespaceRules does: the
// gateway's base rules cluster-wide, the operator's kinds in Roles of the
// namespaces it watches. bindings names those Roles' bindings by namespace.
func namespaceScopedConfig(t *testing.T, name string) (c *rest.Config, bindings map[string]*rbacv1.RoleBinding) {
	t.Helper()
	all, err := rbac.ClusterOperators(context.Background(), dyn(t))
	if err != nil {
		t.Fatal(err)
	}
	ops := slices.DeleteFunc(all, func(op *spec.WebhookOperator) bool { return op.Name != name })
	rules, err := rbac.For(ops, discoveryResolver(t), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules.Namespaced) == 0 {
		t.Fatalf("rules %+v: no Role; the test needs namespace-scoped rules", rules)
	}
	base := rbac.BaseRules()
	c, _ = impersonatedConfig(t, "opgate-ns-scoped", slices.Concat(base.Cluster, base.Namespace, base.Secrets, rules.Cluster), 0)
	bindings = map[string]*rbacv1.RoleBinding{}
	for ns, nsRules := range rules.Namespaced {
		bindings[ns] = bindRole(t, ns, c.Impersonate.UserName, nsRules)
	}
	return c, bindings
}

// bindRole grants user rules in ns alone (a Role and its RoleBinding) and
// returns the binding, to delete and create again.
func bindRole(t *testing.T, ns, user string, rules []rbacv1.PolicyRule) *rbacv1.RoleBinding {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns}, Rules: rules}
	if _, err := kube(t).RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := kube(t).RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create RoleBinding: %v", err)
	}
	return binding
}

// Under namespace-scoped RBAC (Roles only where the operator watches, no
// cluster-wide list of the kind), deleting the WebhookOperator lets go of
// its objects in the namespaces it watched, also when its operator never
// ran in this gateway (a spec turned invalid while no gateway ran: the
// stored spec's watch says where). When even that is forbidden, the
// WebhookOperator stays, Ready=False/ReleaseForbidden with a Warning Event
// saying why, and goes once the permission is back.
func TestDeletingWebhookOperatorUnderNamespaceScopedRBACReleasesItsObjects(t *testing.T) {
	// Valid for the CRD's schema, refused by the gateway's semantic checks.
	const invalid = `[{id: create, events: [create], interval: 1m}, {id: cleanup, events: [delete]}]`
	for _, tt := range []struct {
		name           string
		revoked        bool // the Role's binding is deleted before the WebhookOperator
		invalidOnStart bool // the next gateway never runs the operator
	}{
		{name: "allowed in the watched namespace"},
		{name: "operator not running: spec invalid at start-up", invalidOnStart: true},
		{name: "forbidden until the Role is bound again", revoked: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(nil))
			name := fmt.Sprintf("ns-scoped-%d", time.Now().UnixNano()%100000)
			watch := fmt.Sprintf("{apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}", ns)
			createOperatorObject(t, operatorDoc(name, watch, h.URL, ""))
			limited, bindings := namespaceScopedConfig(t, name)
			stop, _ := startGatewayWithConfig(t, limited, runner.Options{}) // registry mode
			waitReady(t, name, "True/Running")
			createWidget(t, ns, "example", 1)
			eventually(t, 30*time.Second, func() error { return heldBy(t, ns, "example", name) })
			eventually(t, 30*time.Second, func() error { return stateHandled(t, ns, "example", name) })

			if tt.invalidOnStart {
				stop()
				replaceOperatorSpec(t, name, operatorDoc(name, watch, h.URL, invalid))
				startGatewayWithConfig(t, limited, runner.Options{})
				eventually(t, 20*time.Second, func() error {
					if c := condition(t, name, spec.ConditionSpecAccepted); c == nil || c.Reason != spec.ReasonInvalidSpec {
						return fmt.Errorf("SpecAccepted = %+v, want False/InvalidSpec", c)
					}
					return nil
				})
			}
			if tt.revoked {
				if err := kube(t).RbacV1().RoleBindings(ns).Delete(context.Background(), bindings[ns].Name, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if tt.revoked {
				waitReady(t, name, "False/"+engine.ReasonReleaseForbidden)
				c := readyCondition(t, name)
				if !strings.Contains(c, "Widget.test.opgate.dev") || !strings.Contains(c, "forbidden") {
					t.Errorf("Ready = %s, want it to name the kind and the API server's refusal", c)
				}
				t.Log(c)
				eventually(t, 10*time.Second, func() error {
					return hasEvent(t, metav1.NamespaceDefault, name, "Warning", engine.ReasonReleaseForbidden)
				})
				if err := heldBy(t, ns, "example", name); err != nil {
					t.Fatalf("nothing should have let go yet: %v", err)
				}
				b := bindings[ns].DeepCopy()
				b.ResourceVersion = ""
				if _, err := kube(t).RbacV1().RoleBindings(ns).Create(context.Background(), b, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 60*time.Second, func() error { return releasedBy(t, ns, "example", name) })
			waitOperatorGone(t, name)
			deleteWidget(t, ns, "example")
			waitWidgetGone(t, ns, "example")
			if cleanupCalledFor(h, "example") {
				t.Errorf("cleanup was called for an object released with its operator")
			}
		})
	}
}
