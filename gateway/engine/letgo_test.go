package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/spec"
)

// Each release attempt looks where the attempts before looked, and the
// running spec while there is one; an edit of the stored watch since the
// last attempt replaces that with the stored watch as it is now, so that
// dropping a namespace the gateway may not list lets the operator go.
func TestReleaseScopesFollowAnEditedStoredWatchAndKeepEarlierOnesOtherwise(t *testing.T) {
	widget := schema.GroupKind{Group: "test.opgate.dev", Kind: "Widget"}
	watch := func(namespaces ...string) *spec.WatchSpec {
		return &spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Widget", Namespaces: namespaces}
	}
	type attempt struct {
		running *spec.WatchSpec // the operator still runs (the first attempt stops it)
		stored  *spec.WatchSpec // the WebhookOperator's watch; nil: gone or unreadable
		want    []string        // Widget's namespaces
	}
	for _, tc := range []struct {
		name     string
		attempts []attempt
	}{
		{name: "a stored watch narrowed since replaces the earlier attempts'", attempts: []attempt{
			{running: watch("a", "b"), stored: watch("a", "b"), want: []string{"a", "b"}},
			{stored: watch("a"), want: []string{"a"}},
			{stored: watch("a"), want: []string{"a"}},
		}},
		{name: "an unchanged stored watch keeps the running spec the first attempt saw", attempts: []attempt{
			{running: watch("a", "b"), stored: watch("a"), want: []string{"a", "b"}},
			{stored: watch("a"), want: []string{"a", "b"}},
		}},
		{name: "no stored watch keeps the earlier attempts'", attempts: []attempt{
			{running: watch("b"), stored: watch("a"), want: []string{"a", "b"}},
			{want: []string{"a", "b"}},
			{want: []string{"a", "b"}},
		}},
		{name: "an edit after the WebhookOperator's watch was unreadable replaces the earlier attempts'", attempts: []attempt{
			{running: watch("a", "b"), want: []string{"a", "b"}},
			{stored: watch("a"), want: []string{"a"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manager{running: map[string]*runningOperator{}, releasing: map[string]*releaseScope{}}
			for i, a := range tc.attempts {
				delete(m.running, "op")
				if a.running != nil {
					m.running["op"] = &runningOperator{op: &spec.WebhookOperator{Spec: spec.OperatorSpec{Watch: *a.running}}}
				}
				var stored []spec.WatchSpec
				if a.stored != nil {
					stored = append(stored, *a.stored)
				}
				got := m.releaseScopes("op", stored)
				if ns, ok := got[widget]; !ok || !sameNamespaces(ns, a.want) || len(got) != 1 {
					t.Errorf("attempt %d: scopes = %v, want Widget in %q", i+1, got, a.want)
				}
			}
		})
	}
}
