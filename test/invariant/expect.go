package invariant

import (
	"slices"

	"github.com/opgate/opgate/gateway/spec"
)

// Expect is which callbacks each kind of change must reach: the operator's
// create, update and delete callbacks.
type Expect struct {
	Operator string
	Create   []string
	Update   []string
	Delete   []string
}

// ExpectFrom reads the expected callbacks from an operator. Callbacks with
// a when filter are left out: whether a change passes the filter is the
// gateway's to decide, so a scenario that needs one checks it by itself.
func ExpectFrom(op *spec.WebhookOperator) Expect {
	exp := Expect{Operator: op.Name}
	for _, cb := range op.Spec.Callbacks {
		if cb.When != nil {
			continue
		}
		if slices.Contains(cb.Events, spec.EventCreate) {
			exp.Create = append(exp.Create, cb.ID)
		}
		if slices.Contains(cb.Events, spec.EventUpdate) {
			exp.Update = append(exp.Update, cb.ID)
		}
		if slices.Contains(cb.Events, spec.EventDelete) {
			exp.Delete = append(exp.Delete, cb.ID)
		}
	}
	return exp
}
