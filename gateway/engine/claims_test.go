package engine

import (
	"maps"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/gateway/spec"
)

func claimant(name, apiVersion, kind string, conditions bool, namespaces ...string) *spec.WebhookOperator {
	op := &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: name}}
	op.Spec.Watch = spec.WatchSpec{APIVersion: apiVersion, Kind: kind, Namespaces: namespaces}
	if conditions {
		op.Spec.Status = &spec.StatusSpec{Conditions: true}
	}
	return op
}

// TestConditionsAreKeptByTheOperatorWhoseNameSortsFirst: of the operators
// asking for status conditions on the objects of one group and kind,
// whatever the version or the order they come in, the one whose name sorts
// first keeps them and every other is refused, naming it; operators not
// asking for them, of another kind, or (for a namespaced kind) watching
// other namespaces, refuse no one.
func TestConditionsAreKeptByTheOperatorWhoseNameSortsFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []*spec.WebhookOperator
		want map[string]string
		// cluster is what a cluster-scoped kind makes of ops, where it
		// differs from want: namespaces tell nothing apart there.
		cluster map[string]string
	}{
		{"one asks", []*spec.WebhookOperator{claimant("a", "x.dev/v1", "W", true)}, map[string]string{}, nil},
		{"two of one kind", []*spec.WebhookOperator{
			claimant("a", "x.dev/v1", "W", true), claimant("b", "x.dev/v1", "W", true),
		}, map[string]string{"b": "a"}, nil},
		{"the later name first in the list", []*spec.WebhookOperator{
			claimant("b", "x.dev/v1", "W", true), claimant("a", "x.dev/v1", "W", true),
		}, map[string]string{"b": "a"}, nil},
		{"three of one kind name the first", []*spec.WebhookOperator{
			claimant("c", "x.dev/v1", "W", true), claimant("a", "x.dev/v1", "W", true), claimant("b", "x.dev/v1", "W", true),
		}, map[string]string{"b": "a", "c": "a"}, nil},
		{"another version of the kind", []*spec.WebhookOperator{
			claimant("a", "x.dev/v2", "W", true), claimant("b", "x.dev/v1", "W", true),
		}, map[string]string{"b": "a"}, nil},
		{"other namespaces of the kind", []*spec.WebhookOperator{
			claimant("a", "x.dev/v1", "W", true, "one"), claimant("b", "x.dev/v1", "W", true, "two"),
		}, map[string]string{}, map[string]string{"b": "a"}},
		{"a namespace in common", []*spec.WebhookOperator{
			claimant("a", "x.dev/v1", "W", true, "one", "two"), claimant("b", "x.dev/v1", "W", true, "three", "two"),
		}, map[string]string{"b": "a"}, nil},
		{"every namespace against some", []*spec.WebhookOperator{
			claimant("b", "x.dev/v1", "W", true, "one"), claimant("a", "x.dev/v1", "W", true),
		}, map[string]string{"b": "a"}, nil},
		{"a refused operator keeps nothing from a later one", []*spec.WebhookOperator{
			claimant("a", "x.dev/v1", "W", true, "one"), claimant("b", "x.dev/v1", "W", true), claimant("c", "x.dev/v1", "W", true, "two"),
		}, map[string]string{"b": "a"}, map[string]string{"b": "a", "c": "a"}},
		{"the first name does not ask", []*spec.WebhookOperator{
			claimant("a", "x.dev/v1", "W", false), claimant("b", "x.dev/v1", "W", true),
		}, map[string]string{}, nil},
		{"another group", []*spec.WebhookOperator{
			claimant("a", "x.dev/v1", "W", true), claimant("b", "y.dev/v1", "W", true),
		}, map[string]string{}, nil},
		{"another kind of the group", []*spec.WebhookOperator{
			claimant("a", "x.dev/v1", "W", true), claimant("b", "x.dev/v1", "V", true),
		}, map[string]string{}, nil},
		{"a core kind", []*spec.WebhookOperator{
			claimant("b", "v1", "ConfigMap", true), claimant("a", "v1", "ConfigMap", true),
		}, map[string]string{"b": "a"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := conditionsHolders(tc.ops, true); !maps.Equal(got, tc.want) {
				t.Errorf("holders on a namespaced kind = %v, want %v", got, tc.want)
			}
			cluster := tc.cluster
			if cluster == nil {
				cluster = tc.want
			}
			if got := conditionsHolders(tc.ops, false); !maps.Equal(got, cluster) {
				t.Errorf("holders on a cluster-scoped kind = %v, want %v", got, cluster)
			}
		})
	}
}

// TestAnOperatorRefusedConditionsIsNotReadyNamingTheirKeeper: while another
// operator keeps the conditions of its kind, it is refused them and not
// ready, ConditionsConflict naming the keeper and the kind; the keeper and
// an operator that does not ask for conditions are not refused.
func TestAnOperatorRefusedConditionsIsNotReadyNamingTheirKeeper(t *testing.T) {
	claims := &conditionsClaims{}
	claims.set([]*spec.WebhookOperator{
		claimant("a", "x.dev/v1", "W", true), claimant("b", "x.dev/v1", "W", true), claimant("c", "x.dev/v1", "W", false),
	})
	for _, tc := range []struct {
		op      *spec.WebhookOperator
		refused bool
	}{
		{claimant("a", "x.dev/v1", "W", true), false},
		{claimant("b", "x.dev/v1", "W", true), true},
		{claimant("c", "x.dev/v1", "W", false), false},
	} {
		t.Run(tc.op.Name, func(t *testing.T) {
			c := &Controller{Deps: Deps{ConditionsClaims: claims}, op: tc.op}
			reason, msg := c.conditionsRefused()
			if refused := reason == ReasonConditionsConflict; refused != tc.refused {
				t.Fatalf("refused for %q: %s; want refused %v", reason, msg, tc.refused)
			}
			if tc.refused {
				if ready, reason, _ := c.Health(); ready || reason != ReasonConditionsConflict {
					t.Errorf("Health = %v, %s: want not ready, %s", ready, reason, ReasonConditionsConflict)
				}
			}
			if tc.refused && (!strings.Contains(msg, "operator a keeps") || !strings.Contains(msg, "W.x.dev")) {
				t.Errorf("message %q: want the keeper and the kind named", msg)
			}
			if c.refusesConditions() != tc.refused {
				t.Errorf("refusesConditions = %v, want %v", !tc.refused, tc.refused)
			}
		})
	}
}
