package rbac

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/spec"
)

// Rules is what a set of WebhookOperators needs beyond Base.
type Rules struct {
	// Cluster rules go in a ClusterRole.
	Cluster []rbacv1.PolicyRule
	// Namespaced rules go in a Role per namespace (only with
	// namespaceScoped, for operators whose watch.namespaces lists them).
	Namespaced map[string][]rbacv1.PolicyRule
	// Secrets lists every grant on core Secrets among them, for
	// CheckSecrets.
	Secrets []SecretGrant
}

// grants accumulates verbs per (namespace, group, resource); namespace ""
// stands for cluster-wide.
type grants map[string]map[[2]string]map[string]bool

func (g grants) add(namespace string, r Resource, sub string, verbs []string) {
	if g[namespace] == nil {
		g[namespace] = map[[2]string]map[string]bool{}
	}
	res := r.Resource
	if sub != "" {
		res += "/" + sub
	}
	key := [2]string{r.Group, res}
	if g[namespace][key] == nil {
		g[namespace][key] = map[string]bool{}
	}
	for _, v := range verbs {
		g[namespace][key][v] = true
	}
}

// For returns the rules ops need: the watched kind (read, patch and update,
// its status subresource and finalizers), children (read and write),
// related kinds (read) and Events. With namespaceScoped, an operator whose
// watch.namespaces lists namespaces gets Roles there for its namespaced
// kinds (children allowed across namespaces stay cluster-wide); everything
// else is cluster-wide. Every kind that cannot be resolved is reported.
func For(ops []*spec.WebhookOperator, r Resolver, namespaceScoped bool) (Rules, error) {
	g := grants{}
	var errs []error
	var secrets []SecretGrant
	for _, op := range ops {
		errs = append(errs, g.addOperator(op, r, namespaceScoped, &secrets)...)
	}
	if err := errors.Join(errs...); err != nil {
		return Rules{}, err
	}
	out := Rules{Cluster: g.rules(""), Namespaced: map[string][]rbacv1.PolicyRule{}, Secrets: secrets}
	for ns := range g {
		if ns != "" {
			out.Namespaced[ns] = g.rules(ns)
		}
	}
	return out, nil
}

// addOperator adds one operator's grants and returns the kinds it could
// not resolve; grants on Secrets are also appended to secrets.
func (g grants) addOperator(op *spec.WebhookOperator, r Resolver, namespaceScoped bool, secrets *[]SecretGrant) []error {
	var errs []error
	resolve := func(what, apiVersion, kind string) (Resource, bool) {
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err == nil {
			var res Resource
			if res, err = r.Resolve(gv.WithKind(kind)); err == nil {
				return res, true
			}
		}
		errs = append(errs, fmt.Errorf("WebhookOperator %s: %s: %w", op.Name, what, err))
		return Resource{}, false
	}
	noteSecrets := func(what string, res Resource, namespaces []string, verbs []string) {
		if isSecrets(res) {
			for _, ns := range namespaces {
				*secrets = append(*secrets, SecretGrant{Operator: op.Name, Field: what, Namespace: ns, Verbs: verbs})
			}
		}
	}
	scopes := []string{""}
	if namespaceScoped && len(op.Spec.Watch.Namespaces) > 0 {
		scopes = op.Spec.Watch.Namespaces
	}
	in := func(res Resource, crossNamespace bool) []string {
		if !res.Namespaced || crossNamespace {
			return []string{""}
		}
		return scopes
	}
	if res, ok := resolve("watch", op.Spec.Watch.APIVersion, op.Spec.Watch.Kind); ok && !res.Namespaced && len(op.Spec.Watch.Namespaces) > 0 {
		w := op.Spec.Watch
		errs = append(errs, fmt.Errorf("WebhookOperator %s: watch: %s %s (%s) is cluster-scoped, its objects are in no namespace: spec.watch.namespaces %v cannot apply, and the gateway refuses the operator (Ready=False, %s); remove spec.watch.namespaces (spec.watch.labelSelector narrows the objects)",
			op.Name, w.APIVersion, w.Kind, res.Resource, w.Namespaces, spec.ReasonNamespacesOnClusterScopedKind))
	} else if ok {
		noteSecrets("watch", res, in(res, false), verbsWatched)
		for _, ns := range in(res, false) {
			g.add(ns, res, "", verbsWatched)
			g.add(ns, res, "status", verbsStatus)
			g.add(ns, res, "finalizers", []string{"update"})
		}
	}
	for i, c := range op.Spec.Children {
		if res, ok := resolve(fmt.Sprintf("children[%d]", i), c.APIVersion, c.Kind); ok {
			noteSecrets(fmt.Sprintf("children[%d]", i), res, in(res, c.AllowCrossNamespace), verbsChild)
			for _, ns := range in(res, c.AllowCrossNamespace) {
				g.add(ns, res, "", verbsChild)
			}
		}
	}
	for i, c := range op.Spec.Related {
		if res, ok := resolve(fmt.Sprintf("related[%d]", i), c.APIVersion, c.Kind); ok {
			noteSecrets(fmt.Sprintf("related[%d]", i), res, in(res, false), verbsRead)
			for _, ns := range in(res, false) {
				g.add(ns, res, "", verbsRead)
			}
		}
	}
	for _, ns := range scopes {
		g.add(ns, Resource{Resource: "events"}, "", verbsEvents)
	}
	return errs
}

// rules turns one namespace's grants into rules: one per group and verb
// set, resources sorted, so that the output is stable and short.
func (g grants) rules(namespace string) []rbacv1.PolicyRule {
	type key struct{ group, verbs string }
	byKey := map[key][]string{}
	for gr, verbs := range g[namespace] {
		k := key{gr[0], strings.Join(sortedVerbs(verbs), ",")}
		byKey[k] = append(byKey[k], gr[1])
	}
	var out []rbacv1.PolicyRule
	for k, resources := range byKey {
		sort.Strings(resources)
		out = append(out, rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: resources, Verbs: strings.Split(k.verbs, ",")})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.APIGroups[0] != b.APIGroups[0] {
			return a.APIGroups[0] < b.APIGroups[0]
		}
		return a.Resources[0] < b.Resources[0]
	})
	return out
}

// verbOrder is the order kubectl users read verbs in.
var verbOrder = []string{"get", "list", "watch", "create", "patch", "update", "delete"}

func sortedVerbs(set map[string]bool) []string {
	var out []string
	for _, v := range verbOrder {
		if set[v] {
			out = append(out, v)
		}
	}
	for v := range set {
		if !slices.Contains(verbOrder, v) {
			out = append(out, v)
		}
	}
	return out
}
