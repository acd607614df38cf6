package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRBACCommandRefusesBadInputNamingWhere(t *testing.T) {
	memcached := filepath.Join("..", "..", "examples", "operators", "memcached.yaml")
	crd := filepath.Join("..", "..", "examples", "crds", "memcacheds.cache.example.com.yaml")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"invalid YAML", []string{"-f", writeFile(t, "bad.yaml", "a: [\n")}, []string{"bad.yaml:1: document 1", "invalid YAML"}},
		{"not a WebhookOperator", []string{"-f", writeFile(t, "cm.yaml", "---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")}, []string{"cm.yaml", "document 2", `/kind: value must be "WebhookOperator"`}},
		{"kind not resolvable offline", []string{"-f", memcached}, []string{"WebhookOperator memcached: watch", "Kind=Memcached", "--crd", "--discover"}},
		{"--crd not a CRD", []string{"-f", memcached, "--crd", memcached}, []string{"memcached.yaml: document 1", "want apiextensions.k8s.io/v1 CustomResourceDefinition"}},
		{"neither files nor cluster", nil, []string{"either -f files or --from-cluster"}},
		{"both files and cluster", []string{"-f", memcached, "--crd", crd, "--from-cluster"}, []string{"either -f files or --from-cluster"}},
		{"bad service account", []string{"-f", memcached, "--crd", crd, "--service-account", "x"}, []string{"want namespace/name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := execute(t, append([]string{"rbac"}, tc.args...)...)
			if err == nil {
				t.Fatalf("no error; printed:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestRBACCommandPrintsClusterRoleAndValues(t *testing.T) {
	args := []string{"rbac", "-f", filepath.Join("..", "..", "examples", "operators", "memcached.yaml"),
		"--crd", filepath.Join("..", "..", "examples", "crds", "memcacheds.cache.example.com.yaml")}
	out, _, err := execute(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict([]byte(out), &role); err != nil {
		t.Fatalf("not one ClusterRole: %v\n%s", err, out)
	}
	if role.Kind != "ClusterRole" || len(role.Rules) == 0 {
		t.Fatalf("printed %s", out)
	}
	vals, _, err := execute(t, append(args, "--values")...)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		RBAC struct {
			Rules []rbacv1.PolicyRule `json:"rules"`
		} `json:"rbac"`
	}
	if err := yaml.UnmarshalStrict([]byte(vals), &v); err != nil {
		t.Fatalf("values: %v\n%s", err, vals)
	}
	if len(v.RBAC.Rules) != len(role.Rules) {
		t.Errorf("values hold %d rules, the ClusterRole %d", len(v.RBAC.Rules), len(role.Rules))
	}
}
