package engine

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func childWithRV(name, rv string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{"replicas": int64(1)}}}
	if rv != "" {
		u.SetResourceVersion(rv)
	}
	return u
}

// A child is fresh only with the content last applied under its own key
// and the resourceVersion that apply returned; forgetting one child keeps
// the others.
func TestAppliedChildIsFreshOnlyAsLastAppliedAndUntouched(t *testing.T) {
	m := &objectMemory{}
	keys := []string{"apps/v1/Deployment|c", "apps/v1/Deployment|a", "v1/ConfigMap|b"}
	for i, k := range keys {
		_, sum, fresh := m.unchangedChild(k, childWithRV("x", ""), childWithRV("x", "1"))
		if fresh {
			t.Fatalf("%s fresh before it was ever applied", k)
		}
		m.rememberApplied(k, sum, fmt.Sprint(10+i))
	}
	cases := []struct {
		name     string
		key      string
		child    *unstructured.Unstructured
		existing childObject
		want     bool
	}{
		{"as applied, untouched", keys[1], childWithRV("x", ""), childWithRV("x", "11"), true},
		{"as applied, untouched, cached raw", keys[1], childWithRV("x", ""), &rawChild{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "11"}}, true},
		{"as applied, another key's resourceVersion", keys[1], childWithRV("x", ""), childWithRV("x", "10"), false},
		{"changed by someone since", keys[0], childWithRV("x", ""), childWithRV("x", "99"), false},
		{"other content", keys[2], childWithRV("y", ""), childWithRV("x", "12"), false},
		{"gone from the cache", keys[2], childWithRV("x", ""), nil, false},
		{"never applied", "v1/Secret|s", childWithRV("x", ""), childWithRV("x", "12"), false},
	}
	for _, tc := range cases {
		if _, _, fresh := m.unchangedChild(tc.key, tc.child, tc.existing); fresh != tc.want {
			t.Errorf("%s: fresh = %v, want %v", tc.name, fresh, tc.want)
		}
	}
	m.applied.forget(keys[1])
	if _, _, fresh := m.unchangedChild(keys[1], childWithRV("x", ""), childWithRV("x", "11")); fresh {
		t.Error("a forgotten child is still fresh")
	}
	if _, _, fresh := m.unchangedChild(keys[0], childWithRV("x", ""), childWithRV("x", "10")); !fresh {
		t.Error("forgetting one child forgot another")
	}
}

// BenchmarkRememberAppliedChild is what the gateway keeps per object with
// one child (B/op: the bytes held for it until the object goes).
func BenchmarkRememberAppliedChild(b *testing.B) {
	child, out := childWithRV("x", ""), childWithRV("x", "12345")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := &objectMemory{}
		_, sum, _ := m.unchangedChild("apps/v1/Deployment|memcached-000001", child, nil)
		m.rememberApplied("apps/v1/Deployment|memcached-000001", sum, out.GetResourceVersion())
	}
}
