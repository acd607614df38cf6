package check

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

const testOperator = "memcached"

func newObj(apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	if namespace != "" {
		u.SetNamespace(namespace)
	}
	if name != "" {
		u.SetName(name)
	}
	return u
}

func namespacedParent() *unstructured.Unstructured {
	p := newObj("cache.example.com/v1alpha1", "Memcached", "demo", "example")
	p.SetUID(types.UID("parent-uid"))
	return p
}

func clusterParent() *unstructured.Unstructured {
	p := newObj("cache.example.com/v1alpha1", "MemcachedCluster", "", "example")
	p.SetUID(types.UID("cluster-parent-uid"))
	return p
}

// with applies edits to a child so table rows stay one line each.
func with(u *unstructured.Unstructured, edits ...func(*unstructured.Unstructured)) *unstructured.Unstructured {
	for _, e := range edits {
		e(u)
	}
	return u
}

func ownedBy(ref metav1.OwnerReference) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) { u.SetOwnerReferences([]metav1.OwnerReference{ref}) }
}

func labelled(k, v string) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) { u.SetLabels(map[string]string{k: v}) }
}

var declaredChildren = []spec.ChildSpec{
	{APIVersion: "apps/v1", Kind: "Deployment"},
	{APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true},
	{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
}

var testScopes = Scopes{
	{Group: "apps", Kind: "Deployment"}:                       false,
	{Group: "", Kind: "ConfigMap"}:                            false,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}: true,
}

func TestCheckChildren(t *testing.T) {
	tests := []struct {
		name     string
		parent   *unstructured.Unstructured
		children []*unstructured.Unstructured
		// wantNamespaces are the namespaces of the accepted children.
		wantNamespaces []string
		// wantErr are substrings of the refusal; empty means accepted.
		wantErr []string
	}{
		{
			name:           "child without namespace gets the namespaced parent's",
			parent:         namespacedParent(),
			children:       []*unstructured.Unstructured{newObj("apps/v1", "Deployment", "", "web")},
			wantNamespaces: []string{"demo"},
		},
		{
			name:           "child of a cluster-scoped parent keeps its namespace or, cluster-scoped, none",
			parent:         clusterParent(),
			children:       []*unstructured.Unstructured{newObj("apps/v1", "Deployment", "team-a", "web"), newObj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "reader")},
			wantNamespaces: []string{"team-a", ""},
		},
		{
			// The API server ignores it; kept, it would make the child's
			// name differ from the observed one, and sync would prune it.
			name:   "cluster-scoped child of a namespaced parent loses any namespace",
			parent: namespacedParent(),
			children: []*unstructured.Unstructured{
				newObj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "reader"),
				newObj("rbac.authorization.k8s.io/v1", "ClusterRole", "demo", "writer"),
			},
			wantNamespaces: []string{"", ""},
		},
		{
			name:     "namespaced child without namespace under a cluster-scoped parent is refused",
			parent:   clusterParent(),
			children: []*unstructured.Unstructured{newObj("v1", "ConfigMap", "", "cfg")},
			wantErr:  []string{`children[0] v1/ConfigMap "cfg"`, "metadata.namespace is required"},
		},
		{
			name:     "owner label with another parent's UID is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{with(newObj("v1", "ConfigMap", "shared", "cfg"), labelled(OwnerUIDLabel, "other-uid"))},
			wantErr:  []string{`sets label opgate.dev/owner-uid="other-uid"`},
		},
		{
			name:     "the parent itself is refused as its own child",
			parent:   with(newObj("apps/v1", "Deployment", "demo", "web"), func(u *unstructured.Unstructured) { u.SetUID("web-uid") }),
			children: []*unstructured.Unstructured{newObj("apps/v1", "Deployment", "", "web")},
			wantErr:  []string{`children[0] apps/v1/Deployment "demo/web"`, "is the parent itself: a parent cannot be its own child"},
		},
		{
			name:     "a cluster-scoped parent is refused as its own child, namespace dropped",
			parent:   with(newObj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "reader"), func(u *unstructured.Unstructured) { u.SetUID("reader-uid") }),
			children: []*unstructured.Unstructured{newObj("rbac.authorization.k8s.io/v1", "ClusterRole", "demo", "reader")},
			wantErr:  []string{"a parent cannot be its own child"},
		},
		{
			name:   "an object of the parent's kind and name elsewhere, or of its kind and namespace under another name, is accepted",
			parent: with(newObj("v1", "ConfigMap", "demo", "cfg"), func(u *unstructured.Unstructured) { u.SetUID("cfg-uid") }),
			children: []*unstructured.Unstructured{
				newObj("v1", "ConfigMap", "shared", "cfg"),
				newObj("v1", "ConfigMap", "", "other"),
			},
			wantNamespaces: []string{"shared", "demo"},
		},
		{
			name:           "empty list is accepted",
			parent:         namespacedParent(),
			children:       []*unstructured.Unstructured{},
			wantNamespaces: []string{},
		},
		{
			name:           "cross-namespace child of a kind that allows it is accepted",
			parent:         namespacedParent(),
			children:       []*unstructured.Unstructured{newObj("v1", "ConfigMap", "shared", "cfg")},
			wantNamespaces: []string{"shared"},
		},
		{
			name:   "ownerReference to the parent and the operator's own label are accepted",
			parent: namespacedParent(),
			children: []*unstructured.Unstructured{
				with(newObj("apps/v1", "Deployment", "", "by-uid"), ownedBy(metav1.OwnerReference{UID: "parent-uid", Kind: "Memcached", Name: "example"})),
				with(newObj("apps/v1", "Deployment", "", "by-name"), ownedBy(metav1.OwnerReference{APIVersion: "cache.example.com/v1alpha1", Kind: "Memcached", Name: "example"})),
				with(newObj("apps/v1", "Deployment", "", "labelled"), labelled(OperatorLabel, testOperator)),
			},
			wantNamespaces: []string{"demo", "demo", "demo"},
		},
		{
			name:     "undeclared kind is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{newObj("v1", "Secret", "", "creds")},
			wantErr:  []string{`children[0] v1/Secret "demo/creds"`, "not declared in spec.children"},
		},
		{
			name:     "declared kind under an undeclared apiVersion is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{newObj("apps/v1beta1", "Deployment", "", "web")},
			wantErr:  []string{`children[0] apps/v1beta1/Deployment "demo/web"`, "not declared"},
		},
		{
			name:     "other namespace without allowCrossNamespace is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{newObj("apps/v1", "Deployment", "kube-system", "web")},
			wantErr:  []string{`children[0] apps/v1/Deployment "kube-system/web"`, `namespace "kube-system" differs from the parent's "demo"`},
		},
		{
			name:     "missing name is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{with(newObj("apps/v1", "Deployment", "", ""), func(u *unstructured.Unstructured) { u.SetGenerateName("web-") })},
			wantErr:  []string{`children[0] apps/v1/Deployment "demo/<unnamed>"`, "metadata.name is required"},
		},
		{
			name:     "name that is not a DNS subdomain is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{newObj("apps/v1", "Deployment", "", "Web_Server")},
			wantErr:  []string{`children[0] apps/v1/Deployment "demo/Web_Server"`, `metadata.name "Web_Server" is invalid`},
		},
		{
			name:     "namespace that is not a DNS label is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{newObj("v1", "ConfigMap", "Not.A.Label", "cfg")},
			wantErr:  []string{`metadata.namespace "Not.A.Label" is invalid`},
		},
		{
			name:     "missing apiVersion and kind are refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{newObj("", "", "", "web")},
			wantErr:  []string{`children[0] apiVersion="" kind="" "demo/web"`, "not declared"},
		},
		{
			name:   "duplicate after namespace defaulting is refused",
			parent: namespacedParent(),
			children: []*unstructured.Unstructured{
				newObj("apps/v1", "Deployment", "", "web"),
				newObj("apps/v1", "Deployment", "demo", "web"),
			},
			wantErr: []string{`children[1] apps/v1/Deployment "demo/web": duplicates children[0]`},
		},
		{
			name:   "same name in another kind is not a duplicate",
			parent: namespacedParent(),
			children: []*unstructured.Unstructured{
				newObj("apps/v1", "Deployment", "", "web"),
				newObj("v1", "ConfigMap", "", "web"),
			},
			wantNamespaces: []string{"demo", "demo"},
		},
		{
			name:     "ownerReference to another object is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{with(newObj("apps/v1", "Deployment", "", "web"), ownedBy(metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "other", UID: "other-uid"}))},
			wantErr:  []string{`sets an ownerReference to Pod "other"`},
		},
		{
			name:     "ownerReference with the parent's name but another UID is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{with(newObj("apps/v1", "Deployment", "", "web"), ownedBy(metav1.OwnerReference{Kind: "Memcached", Name: "example", UID: "stale-uid"}))},
			wantErr:  []string{`sets an ownerReference to Memcached "example"`},
		},
		{
			name:     "operator label of another operator is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{with(newObj("apps/v1", "Deployment", "", "web"), labelled(OperatorLabel, "nginx"))},
			wantErr:  []string{`sets label opgate.dev/operator="nginx"`},
		},
		{
			name:   "labels that are not strings are refused",
			parent: namespacedParent(),
			children: []*unstructured.Unstructured{with(newObj("apps/v1", "Deployment", "", "web"), func(u *unstructured.Unstructured) {
				u.Object["metadata"].(map[string]any)["labels"] = map[string]any{OperatorLabel: int64(5)}
			})},
			wantErr: []string{"metadata.labels must map strings to strings"},
		},
		{
			name:     "null child is refused",
			parent:   namespacedParent(),
			children: []*unstructured.Unstructured{nil},
			wantErr:  []string{"children[0]: is null"},
		},
		{
			name:   "every offending child is named, with every reason",
			parent: namespacedParent(),
			children: []*unstructured.Unstructured{
				newObj("apps/v1", "Deployment", "", "fine"),
				newObj("v1", "Secret", "elsewhere", "bad"),
				with(newObj("apps/v1", "Deployment", "", "worse"), labelled(OperatorLabel, "nginx")),
			},
			wantErr: []string{
				`children[1] v1/Secret "elsewhere/bad": apiVersion/kind not declared`,
				`children[2] apps/v1/Deployment "demo/worse": sets label`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := make([]*unstructured.Unstructured, len(tt.children))
			for i, c := range tt.children {
				if c != nil {
					before[i] = c.DeepCopy()
				}
			}

			got, err := CheckChildren(tt.parent, tt.children, declaredChildren, testScopes, testOperator)

			for i := range tt.children {
				if !reflect.DeepEqual(tt.children[i], before[i]) {
					t.Errorf("input children[%d] was modified: %v", i, tt.children[i])
				}
			}
			if len(tt.wantErr) > 0 {
				assertRefused(t, got, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("CheckChildren: unexpected error: %v", err)
			}
			gotNS := make([]string, len(got))
			for i, c := range got {
				gotNS[i] = c.GetNamespace()
			}
			if !reflect.DeepEqual(gotNS, tt.wantNamespaces) {
				t.Errorf("namespaces = %q, want %q", gotNS, tt.wantNamespaces)
			}
			for i := range got {
				if got[i] == tt.children[i] {
					t.Errorf("children[%d] is returned without being copied", i)
				}
			}
		})
	}
}

func assertRefused(t *testing.T, got []*unstructured.Unstructured, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("CheckChildren accepted %d children, want refusal containing %q", len(got), want)
	}
	if got != nil {
		t.Errorf("refused response still returned %d children", len(got))
	}
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Class != failure.Permanent || fe.Reason != ReasonChildRefused {
		t.Errorf("error = %#v, want a permanent %s failure", err, ReasonChildRefused)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// Without scopes (the offline `gateway call`), every kind is taken as
// namespaced and nothing is refused for want of a namespace.
func TestCheckChildrenWithoutScopes(t *testing.T) {
	got, err := CheckChildren(clusterParent(), []*unstructured.Unstructured{newObj("v1", "ConfigMap", "", "cfg")}, declaredChildren, nil, testOperator)
	if err != nil || len(got) != 1 || got[0].GetNamespace() != "" {
		t.Fatalf("CheckChildren = %v, %v; want the child accepted as it is", got, err)
	}
}

func TestCheckChildrenWithoutParentIsAnError(t *testing.T) {
	if _, err := CheckChildren(nil, nil, declaredChildren, testScopes, testOperator); err == nil {
		t.Fatal("CheckChildren(nil parent) succeeded")
	}
}

// The API server takes RBAC names that are path segments, not DNS
// subdomains ("myapp:reader", the usual convention for ClusterRoles and
// their bindings): a child it would take is not refused for its name, and
// one no kind can have (a '/' breaks the URL) still is.
func TestChildNameRulesFollowTheKind(t *testing.T) {
	const rbac = "rbac.authorization.k8s.io/v1"
	declared := []spec.ChildSpec{
		{APIVersion: rbac, Kind: "ClusterRole"},
		{APIVersion: rbac, Kind: "RoleBinding"},
		{APIVersion: "v1", Kind: "ConfigMap"},
	}
	scopes := Scopes{
		{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}: true,
		{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}: false,
		{Kind: "ConfigMap"}: false,
	}
	for _, tt := range []struct {
		name, apiVersion, kind, namespace, child string
		refused                                  bool
	}{
		{"a ClusterRole named with a colon", rbac, "ClusterRole", "", "myapp:reader", false},
		{"a RoleBinding named with a colon", rbac, "RoleBinding", "", "myapp:reader", false},
		{"an RBAC name with upper case", rbac, "ClusterRole", "", "MyApp:Reader", false},
		{"an RBAC name with a slash", rbac, "ClusterRole", "", "myapp/reader", true},
		{"an RBAC name with a percent sign", rbac, "ClusterRole", "", "myapp%reader", true},
		{"an RBAC name that is ..", rbac, "ClusterRole", "", "..", true},
		{"a ConfigMap named with a colon", "v1", "ConfigMap", "", "myapp:reader", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			children := []*unstructured.Unstructured{newObj(tt.apiVersion, tt.kind, tt.namespace, tt.child)}
			_, err := CheckChildren(namespacedParent(), children, declared, scopes, testOperator)
			if refused := err != nil; refused != tt.refused {
				t.Errorf("CheckChildren(%s %q) = %v, want refused %v", tt.kind, tt.child, err, tt.refused)
			}
		})
	}
}
