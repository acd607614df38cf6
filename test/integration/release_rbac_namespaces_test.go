package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/runner"
)

// deleteNamespaceAsItsController deletes ns the way the namespace
// controller would: its content (here the Role and RoleBinding that grant
// the gateway its rules there) first, then the namespace, whose
// "kubernetes" finalizer envtest has no controller to remove.
func deleteNamespaceAsItsController(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	k := kube(t)
	if err := k.RbacV1().RoleBindings(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := k.RbacV1().Roles(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := k.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	o, err := k.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.Spec.Finalizers = nil
	if _, err := k.CoreV1().Namespaces().Finalize(ctx, o, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if _, err := k.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			return fmt.Errorf("namespace %s still there", ns)
		}
		return nil
	})
}

// namespacedOperator creates a WebhookOperator called name watching Widgets
// in namespaces, starts a registry-mode gateway with namespace-scoped RBAC
// (a Role in each of them) and waits until the operator holds a Widget
// "example" in each of held. It returns the RoleBindings by namespace.
func namespacedOperator(t *testing.T, name, url string, namespaces, held []string) map[string]*rbacv1.RoleBinding {
	t.Helper()
	watch := fmt.Sprintf("{apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}", strings.Join(namespaces, ", "))
	createOperatorObject(t, operatorDoc(name, watch, url, ""))
	limited, bindings := namespaceScopedConfig(t, name)
	startGatewayWithConfig(t, limited, runner.Options{}) // registry mode
	waitReady(t, name, "True/Running")
	for _, ns := range held {
		createWidget(t, ns, "example", 1)
		eventually(t, 30*time.Second, func() error { return heldBy(t, ns, "example", name) })
	}
	return bindings
}

func revokeRole(t *testing.T, b *rbacv1.RoleBinding) {
	t.Helper()
	if err := kube(t).RbacV1().RoleBindings(b.Namespace).Delete(context.Background(), b.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func bindRoleAgain(t *testing.T, b *rbacv1.RoleBinding) {
	t.Helper()
	b = b.DeepCopy()
	b.ResourceVersion = ""
	if _, err := kube(t).RbacV1().RoleBindings(b.Namespace).Create(context.Background(), b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func deleteOperatorObject(t *testing.T, name string) {
	t.Helper()
	if err := dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Under namespace-scoped RBAC, deleting a WebhookOperator releases its
// objects namespace by namespace. A watched namespace deleted since (its
// Role went with it) holds nothing and is skipped. One the gateway may no
// longer list (its RoleBinding deleted) keeps the WebhookOperator
// Ready=False/ReleaseForbidden naming that namespace alone, while the
// others are released at once; it goes once the Role is bound again.
func TestDeletedOperatorUnderNamespacedRBACReleasesEachNamespaceItMay(t *testing.T) {
	for _, tt := range []struct {
		name    string
		revoked bool // a third watched namespace's RoleBinding is deleted
	}{
		{name: "a watched namespace deleted"},
		{name: "a watched namespace deleted, another one refused", revoked: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kept, gone, refused := newNamespace(t), newNamespace(t), newNamespace(t)
			h := newHandler(t, ok(nil))
			name := fmt.Sprintf("ns-each-%d", time.Now().UnixNano()%100000)
			watched, held := []string{kept, gone}, []string{kept}
			if tt.revoked {
				watched, held = append(watched, refused), append(held, refused)
			}
			bindings := namespacedOperator(t, name, h.URL, watched, held)

			deleteNamespaceAsItsController(t, gone)
			if tt.revoked {
				revokeRole(t, bindings[refused])
			}
			deleteOperatorObject(t, name)

			eventually(t, 30*time.Second, func() error { return releasedBy(t, kept, "example", name) })
			if tt.revoked {
				waitReady(t, name, "False/"+engine.ReasonReleaseForbidden)
				c := readyCondition(t, name)
				if !strings.Contains(c, `"`+refused+`"`) || strings.Contains(c, `"`+gone+`"`) || strings.Contains(c, `"`+kept+`"`) {
					t.Errorf("Ready = %s, want it to name the refused namespace %s alone", c, refused)
				}
				eventually(t, 10*time.Second, func() error {
					return hasEvent(t, metav1.NamespaceDefault, name, "Warning", engine.ReasonReleaseForbidden)
				})
				if err := heldBy(t, refused, "example", name); err != nil {
					t.Fatalf("the refused namespace's object should still be held: %v", err)
				}
				bindRoleAgain(t, bindings[refused])
				eventually(t, 60*time.Second, func() error { return releasedBy(t, refused, "example", name) })
			}
			waitOperatorGone(t, name)
		})
	}
}

// A deleted WebhookOperator kept by a namespace the gateway may not list
// (Ready=False/ReleaseForbidden) goes once its watch.namespaces is edited
// to drop that namespace, without a restart: each attempt looks where the
// stored spec says now. The object left in the dropped namespace keeps
// the operator's finalizer: the author gave up on it.
func TestDeletedOperatorGoesOnceItsSpecDropsTheRefusedNamespace(t *testing.T) {
	kept, refused := newNamespace(t), newNamespace(t)
	h := newHandler(t, ok(nil))
	name := fmt.Sprintf("ns-drop-%d", time.Now().UnixNano()%100000)
	bindings := namespacedOperator(t, name, h.URL, []string{kept, refused}, []string{kept, refused})
	revokeRole(t, bindings[refused])
	deleteOperatorObject(t, name)
	waitReady(t, name, "False/"+engine.ReasonReleaseForbidden)
	eventually(t, 30*time.Second, func() error { return releasedBy(t, kept, "example", name) })

	replaceOperatorSpec(t, name, operatorDoc(name, widgetWatch(kept), h.URL, ""))

	eventually(t, 60*time.Second, func() error {
		if _, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), name, metav1.GetOptions{}); err == nil {
			return fmt.Errorf("WebhookOperator %s still there: %s", name, readyCondition(t, name))
		}
		return nil
	})
	if err := heldBy(t, refused, "example", name); err != nil {
		t.Errorf("the dropped namespace's object: %v; want it still held (the gateway may not patch it)", err)
	}
}
