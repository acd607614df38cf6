package rbac

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/opgate/opgate/gateway/spec"
)

func memcachedCRD() *apiextensionsv1.CustomResourceDefinition {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Spec.Group = "cache.example.com"
	crd.Spec.Names.Kind = "Memcached"
	crd.Spec.Names.Plural = "memcacheds"
	crd.Spec.Scope = apiextensionsv1.NamespaceScoped
	return crd
}

func operator(name string, namespaces []string, children []spec.ChildSpec, related ...spec.RelatedSpec) *spec.WebhookOperator {
	op := &spec.WebhookOperator{}
	op.Name = name
	op.Spec.Watch = spec.WatchSpec{APIVersion: "cache.example.com/v1alpha1", Kind: "Memcached", Namespaces: namespaces}
	op.Spec.Children = children
	op.Spec.Related = related
	return op
}

func rule(group string, verbs []string, resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
}

var upd = []string{"update"}

func TestForGrantsEachKindItsVerbs(t *testing.T) {
	deployments := []spec.ChildSpec{{APIVersion: "apps/v1", Kind: "Deployment"}}
	pods := spec.RelatedSpec{APIVersion: "v1", Kind: "Pod"}
	watched := []rbacv1.PolicyRule{
		rule("cache.example.com", verbsWatched, "memcacheds"),
		rule("cache.example.com", upd, "memcacheds/finalizers"),
		rule("cache.example.com", verbsStatus, "memcacheds/status"),
	}
	cases := []struct {
		name            string
		ops             []*spec.WebhookOperator
		namespaceScoped bool
		want            Rules
	}{
		{
			name: "cluster-wide operator",
			ops:  []*spec.WebhookOperator{operator("m", nil, deployments, pods)},
			want: Rules{Cluster: append([]rbacv1.PolicyRule{
				rule("", verbsEvents, "events"),
				rule("", verbsRead, "pods"),
				rule("apps", verbsChild, "deployments"),
			}, watched...)},
		},
		{
			name: "namespaces listed but cluster-wide asked",
			ops:  []*spec.WebhookOperator{operator("m", []string{"a"}, deployments)},
			want: Rules{Cluster: append([]rbacv1.PolicyRule{
				rule("", verbsEvents, "events"),
				rule("apps", verbsChild, "deployments"),
			}, watched...)},
		},
		{
			name:            "namespace-scoped: a Role per watched namespace, cluster-scoped and cross-namespace kinds stay in the ClusterRole",
			ops:             []*spec.WebhookOperator{operator("m", []string{"a", "b"}, []spec.ChildSpec{{APIVersion: "v1", Kind: "Namespace"}, {APIVersion: "v1", Kind: "ConfigMap", AllowCrossNamespace: true}, {APIVersion: "apps/v1", Kind: "Deployment"}})},
			namespaceScoped: true,
			want: Rules{
				Cluster: []rbacv1.PolicyRule{rule("", verbsChild, "configmaps", "namespaces")},
				Namespaced: map[string][]rbacv1.PolicyRule{
					"a": append([]rbacv1.PolicyRule{rule("", verbsEvents, "events"), rule("apps", verbsChild, "deployments")}, watched...),
					"b": append([]rbacv1.PolicyRule{rule("", verbsEvents, "events"), rule("apps", verbsChild, "deployments")}, watched...),
				},
			},
		},
		{
			name: "two operators: verbs merge per resource",
			ops: []*spec.WebhookOperator{
				operator("m", nil, nil, spec.RelatedSpec{APIVersion: "apps/v1", Kind: "Deployment"}),
				operator("n", nil, deployments),
			},
			want: Rules{Cluster: append([]rbacv1.PolicyRule{
				rule("", verbsEvents, "events"),
				rule("apps", verbsChild, "deployments"),
			}, watched...)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := For(tc.ops, NewOffline(memcachedCRD()), tc.namespaceScoped)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want.Namespaced == nil {
				tc.want.Namespaced = map[string][]rbacv1.PolicyRule{}
			}
			if !reflect.DeepEqual(tc.want, got) {
				t.Errorf("rules:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestForNamesEveryKindItCannotResolve(t *testing.T) {
	op := operator("m", nil, []spec.ChildSpec{{APIVersion: "example.org/v1", Kind: "Thing"}})
	_, err := For([]*spec.WebhookOperator{op}, NewOffline(), false)
	if !errors.Is(err, ErrUnresolved) {
		t.Fatalf("err = %v, want ErrUnresolved", err)
	}
	for _, want := range []string{"WebhookOperator m: watch", "cache.example.com/v1alpha1, Kind=Memcached", "children[0]", "example.org/v1, Kind=Thing", "--crd", "--discover"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// The gateway refuses an operator whose watch.namespaces is set on a
// cluster-scoped kind (NamespacesOnClusterScopedKind): rules printed for
// it would grant what nothing will use, and hide the mistake until the
// gateway runs. Whatever flags are given, it is an error naming it.
func TestForRefusesWatchNamespacesOnAClusterScopedKind(t *testing.T) {
	crd := memcachedCRD()
	crd.Spec.Scope = apiextensionsv1.ClusterScoped
	for _, namespaceScoped := range []bool{false, true} {
		op := operator("m", []string{"a", "b"}, nil)
		_, err := For([]*spec.WebhookOperator{op}, NewOffline(crd), namespaceScoped)
		if err == nil {
			t.Fatalf("namespaceScoped %v: no error, want one refusing spec.watch.namespaces", namespaceScoped)
		}
		for _, want := range []string{"WebhookOperator m: watch", "cluster-scoped", "spec.watch.namespaces [a b]", spec.ReasonNamespacesOnClusterScopedKind} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("namespaceScoped %v: error %q does not say %q", namespaceScoped, err, want)
			}
		}
	}
	if _, err := For([]*spec.WebhookOperator{operator("m", nil, nil)}, NewOffline(crd), true); err != nil {
		t.Errorf("the cluster-scoped kind watched everywhere: %v, want its rules", err)
	}
}

func TestManifestsBindTheServiceAccount(t *testing.T) {
	r := Rules{Cluster: []rbacv1.PolicyRule{rule("", verbsRead, "pods")}, Namespaced: map[string][]rbacv1.PolicyRule{"a": {rule("", verbsEvents, "events")}}}
	out, err := r.Manifests("ops", &Subject{Namespace: "opgate", Name: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: ClusterRole\n", "kind: ClusterRoleBinding\n", "kind: Role\n", "kind: RoleBinding\n", "namespace: a\n", "name: gw\n", "namespace: opgate\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("manifests lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "creationTimestamp") {
		t.Errorf("manifests carry creationTimestamp:\n%s", out)
	}
}
