package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// A WebhookOperator's author chooses the handler URL: a reference to a
// Secret outside the gateway's Secret namespace would send its value
// there. It is refused in the operator's status, and nothing is called.
func TestSecretOutsideTheSecretNamespaceIsRefusedAndNothingIsSent(t *testing.T) {
	allowed, other := newNamespace(t), newNamespace(t)
	writeSecret(t, other, "stolen", "not-yours")
	h := newHandler(t, ok(nil))
	startGatewayWithOptions(t, runner.Options{SecretNamespace: allowed}) // registry mode
	const name = "secret-elsewhere"
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler:
    url: %q
    auth: {hmacSecretRef: {namespace: %s, name: stolen, key: key}}
  callbacks: [{id: create, events: [create]}]
`, name, other, h.URL, other))
	createWidget(t, other, "example", 1)

	waitReady(t, name, "False/"+"SecretNotAllowed")
	msg := readyCondition(t, name)
	for _, want := range []string{`Secret "stolen"`, fmt.Sprintf("namespace %q", other), fmt.Sprintf("namespace %q", allowed), "spec.handler.auth.hmacSecretRef"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready = %s, want it to name %s", msg, want)
		}
	}
	if n := len(h.calls("create")); n != 0 {
		t.Fatalf("the handler was called %d times; a refused operator must send nothing", n)
	}
	if strings.Contains(msg, "not-yours") {
		t.Fatalf("the status shows the Secret's value: %s", msg)
	}
}

// The gateway needs Secrets only in its own namespace: with get, list and
// watch on Secrets there alone (a Role, no cluster-wide grant), an operator
// whose HMAC key is there signs its calls.
func TestGatewayReadingSecretsOnlyInItsNamespaceSignsCalls(t *testing.T) {
	allowed, watched := newNamespace(t), newNamespace(t)
	writeSecret(t, allowed, "handler-auth", "the-key")
	all := []string{"*"}
	limited, _ := impersonatedConfig(t, "opgate-secret-ns", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"events", "configmaps", "namespaces", "pods"}, Verbs: all},
		{APIGroups: []string{"test.opgate.dev", spec.Group, "events.k8s.io", "coordination.k8s.io", "apps"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	}, 0)
	grantSecretsIn(t, allowed, limited.Impersonate.UserName)

	gate := &authGate{}
	gate.accept("the-key")
	h := newHandler(t, sizeStatus)
	h.Config.Handler = gate.wrap(h.Config.Handler)
	gw := runGateway(t, limited, runner.Options{
		SecretNamespace: allowed,
		Operators: []*spec.WebhookOperator{operatorFor(t, "secret-ns", watched, h.URL, func(s *spec.OperatorSpec) {
			s.Handler.Auth = &spec.AuthSpec{HMACSecretRef: &spec.SecretKeyRef{Namespace: allowed, Name: "handler-auth", Key: "key"}}
			s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
		})},
	})
	createWidget(t, watched, "example", 1)
	eventually(t, 30*time.Second, func() error { return statusMessage(t, watched, "example", "size 1") })
	if err := gw.Ready(); err != nil {
		t.Errorf("Ready() = %v, want ready", err)
	}
	if n := gate.refused.Load(); n != 0 {
		t.Errorf("%d calls were unsigned or wrongly signed", n)
	}
}

// grantSecretsIn lets user get, list and watch Secrets in ns only.
func grantSecretsIn(t *testing.T, ns, user string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "read-secrets", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := kube(t).RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "read-secrets", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-secrets"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := kube(t).RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create RoleBinding: %v", err)
	}
}
