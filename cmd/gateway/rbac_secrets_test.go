package main

import (
	"strings"
	"testing"
)

// secretOperator watches ConfigMaps in namespaces and relates Secrets.
func secretOperator(t *testing.T, namespaces string) string {
	return writeFile(t, "op.yaml", `apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: reads-secrets}
spec:
  watch: {apiVersion: v1, kind: ConfigMap, namespaces: `+namespaces+`}
  related: [{apiVersion: v1, kind: Secret}]
  handler: {url: "https://handler.example/"}
  callbacks: [{id: sync, events: [sync]}]
`)
}

// Rules granting Secrets outside the gateway's Secret namespace would undo
// --secret-namespace once pasted into the chart: gateway rbac refuses to
// print them, says why and what to do, unless asked explicitly.
func TestRBACCommandRefusesSecretsOutsideTheSecretNamespace(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		refuse  []string // what the error says; nil: printed
		printed string
	}{
		{name: "cluster-wide", args: []string{"-f", secretOperator(t, "[]")},
			refuse: []string{"WebhookOperator reads-secrets", "related[0]", "secrets", "cluster-wide", "--secret-namespace", "--allow-secrets"}},
		{name: "Role in another namespace", args: []string{"-f", secretOperator(t, "[apps]"), "--namespace-scoped", "--secret-namespace", "handlers"},
			refuse: []string{"related[0]", `namespace "apps"`, `"handlers"`}},
		{name: "Role in the Secret namespace", args: []string{"-f", secretOperator(t, "[handlers]"), "--namespace-scoped", "--secret-namespace", "handlers"},
			printed: "secrets"},
		{name: "explicitly allowed", args: []string{"-f", secretOperator(t, "[]"), "--allow-secrets"},
			printed: "secrets"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := execute(t, append([]string{"rbac"}, tc.args...)...)
			if tc.refuse == nil {
				if err != nil || !strings.Contains(out, tc.printed) {
					t.Fatalf("err = %v, printed:\n%s\nwant rules naming %s", err, out, tc.printed)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; printed:\n%s", out)
			}
			for _, w := range tc.refuse {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
