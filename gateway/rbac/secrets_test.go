package rbac

import (
	"strings"
	"testing"

	"github.com/opgate/opgate/gateway/spec"
)

func TestCheckSecretsAcceptsOnlyRolesInTheSecretNamespace(t *testing.T) {
	secretChild := []spec.ChildSpec{{APIVersion: "v1", Kind: "Secret"}}
	secretRelated := spec.RelatedSpec{APIVersion: "v1", Kind: "Secret"}
	cases := []struct {
		name            string
		op              *spec.WebhookOperator
		namespaceScoped bool
		secretNamespace string
		refused         []string // "" entries never; nil: accepted
	}{
		{"no Secret kind", operator("m", nil, nil, spec.RelatedSpec{APIVersion: "v1", Kind: "Pod"}), false, "", nil},
		{"related Secret cluster-wide", operator("m", nil, nil, secretRelated), false, "handlers", []string{"WebhookOperator m: related[0]", "get,list,watch on secrets cluster-wide", `"handlers"`}},
		{"child Secret in a Role elsewhere", operator("m", []string{"apps"}, secretChild), true, "handlers", []string{"children[0]", `in namespace "apps"`}},
		{"cross-namespace child Secret stays cluster-wide", operator("m", []string{"handlers"}, []spec.ChildSpec{{APIVersion: "v1", Kind: "Secret", AllowCrossNamespace: true}}), true, "handlers", []string{"children[0]", "cluster-wide"}},
		{"no Secret namespace given", operator("m", []string{"handlers"}, secretChild), true, "", []string{"no --secret-namespace"}},
		{"Role in the Secret namespace", operator("m", []string{"handlers"}, secretChild, secretRelated), true, "handlers", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := For([]*spec.WebhookOperator{tc.op}, NewOffline(memcachedCRD()), tc.namespaceScoped)
			if err != nil {
				t.Fatal(err)
			}
			err = rules.CheckSecrets(tc.secretNamespace)
			if tc.refused == nil {
				if err != nil {
					t.Fatalf("CheckSecrets = %v, want accepted", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckSecrets accepted %+v", rules.Secrets)
			}
			for _, w := range append(tc.refused, "--allow-secrets") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
