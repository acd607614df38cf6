package rbac

import (
	"bytes"
	"fmt"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Subject is the ServiceAccount roles are bound to.
type Subject struct{ Namespace, Name string }

// Manifests renders rules as a ClusterRole and a Role per namespace named
// name, and, when sa is set, the bindings to that ServiceAccount: YAML
// documents ready for kubectl apply.
func (r Rules) Manifests(name string, sa *Subject) ([]byte, error) {
	var docs []any
	meta := func(kind, ns string) (metav1.TypeMeta, metav1.ObjectMeta) {
		return metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind},
			metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/part-of": "opgate"}}
	}
	ref := func(kind string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: name}
	}
	var subjects []rbacv1.Subject
	if sa != nil {
		subjects = []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}}
	}
	if len(r.Cluster) > 0 {
		tm, om := meta("ClusterRole", "")
		docs = append(docs, rbacv1.ClusterRole{TypeMeta: tm, ObjectMeta: om, Rules: r.Cluster})
		if sa != nil {
			tm, om := meta("ClusterRoleBinding", "")
			docs = append(docs, rbacv1.ClusterRoleBinding{TypeMeta: tm, ObjectMeta: om, RoleRef: ref("ClusterRole"), Subjects: subjects})
		}
	}
	for _, ns := range r.namespaces() {
		tm, om := meta("Role", ns)
		docs = append(docs, rbacv1.Role{TypeMeta: tm, ObjectMeta: om, Rules: r.Namespaced[ns]})
		if sa != nil {
			tm, om := meta("RoleBinding", ns)
			docs = append(docs, rbacv1.RoleBinding{TypeMeta: tm, ObjectMeta: om, RoleRef: ref("Role"), Subjects: subjects})
		}
	}
	var buf bytes.Buffer
	for i, d := range docs {
		out, err := yaml.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("render RBAC: %w", err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(bytes.ReplaceAll(out, []byte("  creationTimestamp: null\n"), nil))
	}
	return buf.Bytes(), nil
}

// Values renders rules as the chart's values: rbac.rules (ClusterRole) and
// rbac.namespaceRules (a Role per namespace).
func (r Rules) Values() ([]byte, error) {
	v := map[string]any{"rules": orEmpty(r.Cluster)}
	if len(r.Namespaced) > 0 {
		v["namespaceRules"] = r.Namespaced
	}
	out, err := yaml.Marshal(map[string]any{"rbac": v})
	if err != nil {
		return nil, fmt.Errorf("render values: %w", err)
	}
	return out, nil
}

func orEmpty(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	if rules == nil {
		return []rbacv1.PolicyRule{}
	}
	return rules
}

func (r Rules) namespaces() []string {
	var out []string
	for ns := range r.Namespaced {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}
