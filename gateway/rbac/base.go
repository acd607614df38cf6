// Package rbac holds the permissions the gateway needs: its own (Base, the
// chart's base ClusterRole and Role render exactly these) and those the
// kinds of given WebhookOperators need (For, printed by `gateway rbac`).
package rbac

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/opgate/opgate/gateway/spec"
)

// Verb sets, named after what they allow.
var (
	verbsRead    = []string{"get", "list", "watch"}
	verbsWatched = []string{"get", "list", "watch", "patch", "update"}
	verbsStatus  = []string{"get", "patch", "update"}
	verbsChild   = []string{"get", "list", "watch", "create", "patch", "update", "delete"}
	verbsEvents  = []string{"create", "patch"}
)

// Base is what the gateway needs for itself, whatever it runs.
type Base struct {
	// Cluster is granted cluster-wide: WebhookOperators (cluster-scoped)
	// with their status and finalizers, Events (on WebhookOperators they
	// land in "default", on watched objects in theirs), CRDs read (a
	// parent's status schema and whether its kind exists), and get on
	// namespaces: under namespace-scoped rules, a refusal to list in a
	// watched namespace that is gone (its Roles with it) is told from one
	// in a namespace that still exists and may hold objects.
	Cluster []rbacv1.PolicyRule
	// Namespace is granted in the gateway's own namespace only: the
	// leader election Lease.
	Namespace []rbacv1.PolicyRule
	// Secrets is granted in the gateway's --secret-namespace only, where
	// handlers' credentials live: the chart's secretNamespace, by default
	// the release namespace.
	Secrets []rbacv1.PolicyRule
}

// BaseRules returns the gateway's own rules.
func BaseRules() Base {
	return Base{
		Cluster: []rbacv1.PolicyRule{
			{APIGroups: []string{spec.Group}, Resources: []string{spec.Resource}, Verbs: verbsWatched},
			{APIGroups: []string{spec.Group}, Resources: []string{spec.Resource + "/status"}, Verbs: verbsStatus},
			{APIGroups: []string{spec.Group}, Resources: []string{spec.Resource + "/finalizers"}, Verbs: []string{"update"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: verbsEvents},
			{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: verbsRead},
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}},
		},
		Namespace: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		},
		Secrets: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: verbsRead},
		},
	}
}
