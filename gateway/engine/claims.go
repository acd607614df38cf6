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
// status conditions of its watched kind. Two operators keeping them on one
// kind would each overwrite the other's Reconciled condition and
// observedGeneration, each write the other's event to write its own,
// without end.
type ConditionsClaims interface {
	// ConditionsHolder returns the operator that keeps status conditions
	// on the kind operator watches instead of it, "" when none does.
	ConditionsHolder(operator string) string
}

// conditionsClaims is the manager's ConditionsClaims: a snapshot of
// conditionsHolders over its operators, replaced whole, read by workers
// without a lock.
type conditionsClaims struct {
	cur atomic.Pointer[map[string]string]
}

func (cc *conditionsClaims) ConditionsHolder(operator string) string {
	if m := cc.cur.Load(); m != nil {
		return (*m)[operator]
	}
	return ""
}

// set stores holders and returns the previous snapshot.
func (cc *conditionsClaims) set(holders map[string]string) map[string]string {
	if prev := cc.cur.Swap(&holders); prev != nil {
		return *prev
	}
	return nil
}

// conditionsHolders maps each operator with status.conditions: true that
// may not keep them to the one that does. Of the operators asking for them
// on one kind (group and kind: every version serves the same objects and
// their one status), the one whose name sorts first keeps them: the same
// choice whatever the order operators start in, on every replica.
// Namespaces and label selectors are not compared: a kind's conditions have
// one keeper.
func conditionsHolders(ops []*spec.WebhookOperator) map[string]string {
	sorted := slices.SortedFunc(slices.Values(ops), func(a, b *spec.WebhookOperator) int { return cmp.Compare(a.Name, b.Name) })
	keeper := map[schema.GroupKind]string{}
	out := map[string]string{}
	for _, op := range sorted {
		if !asksConditions(op) {
			continue
		}
		gk := watchedKind(op.Spec.Watch)
		if k, ok := keeper[gk]; ok {
			out[op.Name] = k
		} else {
			keeper[gk] = op.Name
		}
	}
	return out
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
	holder := c.ConditionsClaims.ConditionsHolder(c.op.Name)
	if holder == "" {
		return ""
	}
	gk := watchedKind(c.op.Spec.Watch)
	return fmt.Sprintf("status.conditions: true, but operator %s keeps the status conditions of %s "+
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
