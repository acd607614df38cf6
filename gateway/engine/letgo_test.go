package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/spec"
)

// Each release attempt looks where the stored watch says now (and the
// running spec); where no stored watch remains (the WebhookOperator gone
// after a failed attempt), where the attempts before looked.
func TestReleaseScopesFollowTheStoredWatchAndKeepEarlierOnesWithoutIt(t *testing.T) {
	widget := schema.GroupKind{Group: "test.opgate.dev", Kind: "Widget"}
	watch := func(namespaces ...string) spec.WatchSpec {
		return spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Widget", Namespaces: namespaces}
	}
	for _, tc := range []struct {
		name    string
		earlier kindScopes      // the attempts before; nil: none
		running *spec.WatchSpec // the operator still runs
		stored  []spec.WatchSpec
		want    []string // Widget's namespaces
	}{
		{name: "a stored watch narrowed since replaces the earlier attempts'", earlier: kindScopes{widget: {"a", "b"}}, stored: []spec.WatchSpec{watch("a")}, want: []string{"a"}},
		{name: "no stored watch keeps the earlier attempts'", earlier: kindScopes{widget: {"a", "b"}}, want: []string{"a", "b"}},
		{name: "the running spec joins the stored watch", running: &spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Widget", Namespaces: []string{"b"}}, stored: []spec.WatchSpec{watch("a")}, want: []string{"a", "b"}},
		{name: "the running spec joins the earlier attempts' without a stored watch", earlier: kindScopes{widget: {"a"}}, running: &spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Widget", Namespaces: []string{"b"}}, want: []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manager{running: map[string]*runningOperator{}, releasing: map[string]kindScopes{}}
			if tc.earlier != nil {
				m.releasing["op"] = tc.earlier
			}
			if tc.running != nil {
				m.running["op"] = &runningOperator{op: &spec.WebhookOperator{Spec: spec.OperatorSpec{Watch: *tc.running}}}
			}
			got := m.releaseScopes("op", tc.stored)
			if ns, ok := got[widget]; !ok || !sameNamespaces(ns, tc.want) || len(got) != 1 {
				t.Errorf("scopes = %v, want Widget in %q", got, tc.want)
			}
			delete(m.running, "op") // stopped by the attempt
			if next := m.releaseScopes("op", nil); !sameNamespaces(next[widget], tc.want) {
				t.Errorf("the next attempt without a stored watch looks in %q, want %q (this one's)", next[widget], tc.want)
			}
		})
	}
}
