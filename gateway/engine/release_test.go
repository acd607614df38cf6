package engine

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/spec"
)

func TestSelects(t *testing.T) {
	widget := schema.GroupKind{Group: "test.opgate.dev", Kind: "Widget"}
	op := func(mutate func(*spec.WatchSpec)) *spec.WebhookOperator {
		o := &spec.WebhookOperator{Spec: spec.OperatorSpec{Watch: spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Widget"}}}
		mutate(&o.Spec.Watch)
		return o
	}
	obj := func(ns string, labels map[string]string) metav1.Object {
		return &metav1.ObjectMeta{Name: "w", Namespace: ns, Labels: labels}
	}
	gold := map[string]string{"tier": "gold"}
	for _, tt := range []struct {
		name string
		op   *spec.WebhookOperator
		gk   schema.GroupKind
		obj  metav1.Object
		want bool
	}{
		{"no operator selects nothing", nil, widget, obj("a", nil), false},
		{"same kind, any namespace", op(func(*spec.WatchSpec) {}), widget, obj("a", nil), true},
		{"another version of the kind", op(func(w *spec.WatchSpec) { w.APIVersion = "test.opgate.dev/v2" }), widget, obj("a", nil), true},
		{"another kind", op(func(*spec.WatchSpec) {}), schema.GroupKind{Kind: "ConfigMap"}, obj("a", nil), false},
		{"same kind name, other group", op(func(*spec.WatchSpec) {}), schema.GroupKind{Group: "other.dev", Kind: "Widget"}, obj("a", nil), false},
		{"listed namespace", op(func(w *spec.WatchSpec) { w.Namespaces = []string{"a", "b"} }), widget, obj("b", nil), true},
		{"namespace not listed", op(func(w *spec.WatchSpec) { w.Namespaces = []string{"a"} }), widget, obj("c", nil), false},
		{"cluster-scoped object ignores namespaces", op(func(w *spec.WatchSpec) { w.Namespaces = []string{"a"} }), widget, obj("", nil), true},
		{"labels match", op(func(w *spec.WatchSpec) { w.LabelSelector = &metav1.LabelSelector{MatchLabels: gold} }), widget, obj("a", gold), true},
		{"labels do not match", op(func(w *spec.WatchSpec) { w.LabelSelector = &metav1.LabelSelector{MatchLabels: gold} }), widget, obj("a", nil), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := selects(tt.op, tt.gk, tt.obj); got != tt.want {
				t.Errorf("selects = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHoldsAny(t *testing.T) {
	for _, tt := range []struct {
		name string
		obj  *metav1.ObjectMeta
		want bool
	}{
		{"nothing", &metav1.ObjectMeta{}, false},
		{"finalizer", &metav1.ObjectMeta{Finalizers: []string{"x.io/y", "opgate.dev/op"}}, true},
		{"state annotation", &metav1.ObjectMeta{Annotations: map[string]string{"opgate.dev/state.op": "{}"}}, true},
		{"another operator's", &metav1.ObjectMeta{Finalizers: []string{"opgate.dev/other"}, Annotations: map[string]string{"opgate.dev/state.other": "{}"}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := holdsAny(tt.obj, "op"); got != tt.want {
				t.Errorf("holdsAny = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKindsRoundTrip(t *testing.T) {
	kinds := []schema.GroupKind{{Group: "test.opgate.dev", Kind: "Widget"}, {Kind: "ConfigMap"}, {Group: "apps", Kind: "Deployment"}, {Kind: "ConfigMap"}}
	s := formatKinds(kinds)
	if s != "ConfigMap,Deployment.apps,Widget.test.opgate.dev" {
		t.Errorf("formatKinds = %q, want sorted and without duplicates", s)
	}
	back := parseKinds(s)
	if formatKinds(back) != s || len(back) != 3 {
		t.Errorf("parseKinds(%q) = %v, want the three kinds back", s, back)
	}
	if len(parseKinds("")) != 0 {
		t.Errorf("parseKinds of an empty record is not empty")
	}
}
