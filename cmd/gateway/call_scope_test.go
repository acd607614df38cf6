package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/spec"
)

// a cluster-scoped child (ClusterRole) of a namespaced parent. The
// engine strips any namespace the answer gives it and owns it by label
// (docs/contract.md, Children); gateway call reports it in the parent's
// namespace, owned by an ownerReference, and refuses one the handler wrote
// with a namespace.
func TestCallAcceptsAClusterScopedChildWrittenWithANamespace(t *testing.T) {
	const child = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"memcached-reader","namespace":"elsewhere"},"rules":[]}`
	h := &recordingHandler{answer: answerJSON(200, `{"children":[`+child+`]}`)}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// What the engine does with the same answer: CheckChildren with the
	// API server's scopes (a ClusterRole is cluster-scoped).
	parent := &unstructured.Unstructured{}
	parent.SetAPIVersion("cache.example.com/v1alpha1")
	parent.SetKind("Memcached")
	parent.SetNamespace("demo")
	parent.SetName("example-memcached")
	parent.SetUID("u1")
	c := &unstructured.Unstructured{}
	_ = c.UnmarshalJSON([]byte(child))
	declared := []spec.ChildSpec{{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}}
	scopes := check.Scopes{schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}: true}
	if _, err := check.CheckChildren(parent, []*unstructured.Unstructured{c}, declared, scopes, "dev"); err != nil {
		t.Fatalf("the engine refuses it too: %v", err)
	}

	r := runCall(t, "--url", srv.URL+"/create", "--event", "create", "--object", callTestdata+"memcached.yaml",
		"--children-kinds", "rbac.authorization.k8s.io/v1/ClusterRole", "-o", "json")
	if r.code != 0 || r.rep == nil || r.rep.Outcome.Result != resultSuccess {
		t.Fatalf("gateway call: exit %d, %s %s; the gateway applies this answer", r.code, r.stdout, r.stderr)
	}
}

func TestCallShowsAClusterScopedChildWithoutNamespaceOrOwnerReference(t *testing.T) {
	const child = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"memcached-reader"},"rules":[]}`
	h := &recordingHandler{answer: answerJSON(200, `{"children":[`+child+`]}`)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	r := runCall(t, "--url", srv.URL+"/create", "--event", "create", "--object", callTestdata+"memcached.yaml",
		"--children-kinds", "rbac.authorization.k8s.io/v1/ClusterRole", "-o", "json", "--show-children")
	if r.rep == nil || len(r.rep.Children) != 1 {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	got := r.rep.Children[0]
	o := &unstructured.Unstructured{Object: got.Object}
	if got.Namespace != "" || len(o.GetOwnerReferences()) != 0 || o.GetLabels()[check.OwnerUIDLabel] == "" {
		t.Errorf("ClusterRole reported as applied in namespace %q with ownerReferences %v and labels %v; the gateway applies it cluster-wide, owned by label %s",
			got.Namespace, o.GetOwnerReferences(), o.GetLabels(), check.OwnerUIDLabel)
	}
}

// a namespaced child without a namespace under a cluster-scoped
// parent is ChildRefused by the gateway (docs/contract.md: "of a
// namespaced kind without a namespace under a cluster-scoped parent ...
// refuses the whole response"); gateway call says success.
func TestCallRefusesANamespacedChildWithoutNamespaceUnderAClusterScopedParent(t *testing.T) {
	const child = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"},"data":{}}`
	h := &recordingHandler{answer: answerJSON(200, `{"children":[`+child+`]}`)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	obj := filepath.Join(t.TempDir(), "tenant.yaml")
	if err := os.WriteFile(obj, []byte("apiVersion: example.com/v1\nkind: Tenant\nmetadata: {name: acme, uid: u2}\nspec: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCall(t, "--url", srv.URL+"/create", "--event", "create", "--object", obj,
		"--children-kinds", "v1/ConfigMap", "-o", "json")
	if r.rep == nil || r.rep.Outcome.Result != resultPermanent || r.rep.Outcome.Reason != check.ReasonChildRefused {
		t.Errorf("exit %d, %s; the gateway refuses this answer whole (ChildRefused)", r.code, r.stdout)
	}
}

// A child kind neither built in nor given with --crd has no known scope:
// the report says so and checks it as namespaced; its CRD gives the scope.
func TestCallTakesAChildKindsScopeFromItsCRDAndSaysWhenItIsUnknown(t *testing.T) {
	const child = `{"apiVersion":"example.com/v1","kind":"Tenant","metadata":{"name":"acme"}}`
	crd := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(crd, []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: tenants.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Tenant, plural: tenants, singular: tenant, listKind: TenantList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name          string
		crd           []string
		wantNamespace string
		wantUnchecked []string
	}{
		{"without its CRD", nil, "demo", []string{"example.com/v1/Tenant"}},
		{"with its CRD", []string{"--crd", crd}, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&recordingHandler{answer: answerJSON(200, `{"children":[`+child+`]}`)})
			defer srv.Close()
			r := runCall(t, append([]string{"--url", srv.URL + "/create", "--event", "create", "--object", callTestdata + "memcached.yaml",
				"--children-kinds", "example.com/v1/Tenant", "-o", "json"}, tt.crd...)...)
			if r.rep == nil || len(r.rep.Children) != 1 {
				t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			if got := r.rep.Children[0].Namespace; got != tt.wantNamespace {
				t.Errorf("child shown in namespace %q, want %q", got, tt.wantNamespace)
			}
			if !slices.Equal(r.rep.ScopeUnchecked, tt.wantUnchecked) {
				t.Errorf("scopeUnchecked %v, want %v", r.rep.ScopeUnchecked, tt.wantUnchecked)
			}
		})
	}
}
