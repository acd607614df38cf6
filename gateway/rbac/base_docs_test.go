package rbac

import (
	"os"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// TestInstallDocsListEachBaseRule keeps docs/install.md's "What the gateway
// may do" equal to BaseRules, which the chart's base roles render: each
// rule's resources and verbs, written "`resource` `verbs`", in the item of
// its scope, and no more rules than BaseRules has.
func TestInstallDocsListEachBaseRule(t *testing.T) {
	doc, err := os.ReadFile("../../docs/install.md")
	if err != nil {
		t.Fatal(err)
	}
	items := baseRuleItems(t, string(doc))
	base := BaseRules()
	for _, scope := range []struct {
		item  string // how the item of docs/install.md begins
		rules []rbacv1.PolicyRule
	}{
		{"cluster-wide:", base.Cluster},
		{"in the namespace the gateway elects in only", base.Namespace},
		{"in the Secret namespace only", base.Secrets},
	} {
		item, ok := items[scope.item]
		if !ok {
			t.Errorf("docs/install.md, What the gateway may do: no item %q", scope.item)
			continue
		}
		listed := strings.Count(item, "` `")
		var want int
		for _, r := range scope.rules {
			for _, res := range r.Resources {
				want++
				if s := "`" + res + "` `" + strings.Join(r.Verbs, " ") + "`"; !strings.Contains(item, s) {
					t.Errorf("docs/install.md, What the gateway may do, %q lacks %s (gateway/rbac.BaseRules):\n%s", scope.item, s, item)
				}
			}
		}
		if listed != want {
			t.Errorf("docs/install.md, What the gateway may do, %q lists %d rules, gateway/rbac.BaseRules %d:\n%s", scope.item, listed, want, item)
		}
	}
}

// baseRuleItems is the list of docs/install.md's "What the gateway may do",
// each item on one line, by the words it begins with.
func baseRuleItems(t *testing.T, doc string) map[string]string {
	t.Helper()
	_, section, ok := strings.Cut(doc, "\n## What the gateway may do\n")
	if !ok {
		t.Fatal("docs/install.md has no section \"What the gateway may do\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, list, _ := strings.Cut(section, "\n- ")
	list, _, _ = strings.Cut(list, "\n\n")
	items := map[string]string{}
	for _, item := range strings.Split(list, "\n- ") {
		item = strings.Join(strings.Fields(item), " ")
		for _, scope := range []string{"cluster-wide:", "in the namespace the gateway elects in only", "in the Secret namespace only"} {
			if strings.HasPrefix(item, scope) {
				items[scope] = item
			}
		}
	}
	return items
}
