package engine

import (
	"cmp"
	"fmt"
	"slices"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/spec"
)

// ConditionsClaims tells a controller which other operator keeps the
// status conditions of its watched objects. Two operators keeping them on
// the same objects would each overwrite the other's Reconciled condition
// and observedGeneration, each write the other's event to write its own,
// without end.
type ConditionsClaims interface {
	// ConditionsHolder returns the operator that keeps status conditions
	// on objects operator watches instead of it, "" when none does.
	// clusterScoped says the watched kind is: namespaces then tell no
	// operators' objects apart.
	ConditionsHolder(operator string, clusterScoped bool) string
}

// conditionsClaims is the manager's ConditionsClaims: a snapshot of
// conditionsHolders over its operators, replaced whole, read by workers
// without a lock.
type conditionsClaims struct {
	cur atomic.Pointer[claimsSnapshot]
}

// claimsSnapshot holds conditionsHolders both ways: the manager does not
// know a kind's scope, its controllers do (and agree on it).
type claimsSnapshot struct {
	namespaced, clusterScoped map[string]string
}

func (cc *conditionsClaims) ConditionsHolder(operator string, clusterScoped bool) string {
	m := cc.cur.Load()
	switch {
	case m == nil:
		return ""
	case clusterScoped:
		return m.clusterScoped[operator]
	}
	return m.namespaced[operator]
}

// set stores the holders among ops and says which operators' holders
// changed from the previous snapshot.
func (cc *conditionsClaims) set(ops []*spec.WebhookOperator) (changed func(operator string) bool) {
	next := &claimsSnapshot{namespaced: conditionsHolders(ops, true), clusterScoped: conditionsHolders(ops, false)}
	prev := cc.cur.Swap(next)
	if prev == nil {
		prev = &claimsSnapshot{}
	}
	return func(op string) bool {
		return prev.namespaced[op] != next.namespaced[op] || prev.clusterScoped[op] != next.clusterScoped[op]
	}
}

// conditionsHolders maps each operator with status.conditions: true that
// may not keep them to the one that does. Of the operators asking for them
// on the same objects (a group and kind: every version serves the same
// objects and their one status; by namespace, overlapping watch.namespaces,
// where byNamespace), the one whose name sorts first keeps them: the same
// choice whatever the order operators start in, on every replica. Label
// selectors are not compared: whether two select the same objects depends
// on the objects.
func conditionsHolders(ops []*spec.WebhookOperator, byNamespace bool) map[string]string {
	sorted := slices.SortedFunc(slices.Values(ops), func(a, b *spec.WebhookOperator) int { return cmp.Compare(a.Name, b.Name) })
	type keeper struct {
		name       string
		namespaces []string // nil: every namespace
	}
	keepers := map[schema.GroupKind][]keeper{}
	out := map[string]string{}
	for _, op := range sorted {
		if !asksConditions(op) {
			continue
		}
		gk := watchedKind(op.Spec.Watch)
		var ns []string
		if byNamespace {
			ns = watchedNamespaces(op.Spec.Watch)
		}
		i := slices.IndexFunc(keepers[gk], func(k keeper) bool { return namespacesOverlap(k.namespaces, ns) })
		if i >= 0 {
			out[op.Name] = keepers[gk][i].name
			continue
		}
		keepers[gk] = append(keepers[gk], keeper{op.Name, ns})
	}
	return out
}

// namespacesOverlap says whether two scopes share a namespace; nil is
// every namespace.
func namespacesOverlap(a, b []string) bool {
	return a == nil || b == nil || slices.ContainsFunc(a, func(ns string) bool { return slices.Contains(b, ns) })
}

func asksConditions(op *spec.WebhookOperator) bool {
	return op.Spec.Status != nil && op.Spec.Status.Conditions
}

// conditionsConflict says why the operator may not keep conditions while
// another operator keeps them on its kind, "" when it may.
func (c *Controller) conditionsConflict() string {
	if c.ConditionsClaims == nil || !c.ownsConditions() {
		return ""
	}
	// Before the kind is resolved no object is handled: its namespaces
	// may tell it apart until its scope is known.
	scoped := c.parent != nil && clusterScoped(c.parent.mapping)
	holder := c.ConditionsClaims.ConditionsHolder(c.op.Name, scoped)
	if holder == "" {
		return ""
	}
	gk := watchedKind(c.op.Spec.Watch)
	return fmt.Sprintf("status.conditions: true, but operator %s keeps the status conditions of %s in the namespaces both watch "+
		"(the name that sorts first keeps them: two would overwrite each other's Reconciled condition and "+
		"observedGeneration without end); no object is touched until %s is removed, turns status.conditions off "+
		"or watches another kind, or until status.conditions is turned off here",
		holder, gk.String(), holder)
}

// conditionsClaimChanged is called when the operator keeping conditions on
// the controller's kind changed: Health may say otherwise, and the objects
// left alone while refused are due.
func (c *Controller) conditionsClaimChanged() {
	c.notifyChanged()
	c.enqueueAll()
}
