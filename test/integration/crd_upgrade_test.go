package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/spec"
)

var gizmos = schema.GroupVersionResource{Group: "crdup.opgate.dev", Version: "v1", Resource: "gizmos"}

// gizmoCRD is a CRD whose status schema knows "known" and, once upgraded,
// "extra".
func gizmoCRD(t *testing.T, upgraded bool) *unstructured.Unstructured {
	t.Helper()
	extra := ""
	if upgraded {
		extra = "\n                extra: {type: string}"
	}
	u := &unstructured.Unstructured{}
	err := yaml.Unmarshal([]byte(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.crdup.opgate.dev}
spec:
  group: crdup.opgate.dev
  names: {kind: Gizmo, plural: gizmos, singular: gizmo, listKind: GizmoList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
            status:
              type: object
              properties:
                known: {type: string}`+extra+`
`), &u.Object)
	if err != nil {
		t.Fatalf("test CRD: %v", err)
	}
	return u
}

// counter sums a counter's series whose labels include want.
func counter(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestStatusCheckFollowsCRDUpgradeWithoutRestart(t *testing.T) {
	ctx := context.Background()
	crds := dyn(t).Resource(crdGVR)
	if _, err := crds.Create(ctx, gizmoCRD(t, false), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	t.Cleanup(func() { _ = crds.Delete(ctx, "gizmos.crdup.opgate.dev", metav1.DeleteOptions{}) })
	ns := newNamespace(t)
	createGizmo := func(name string) {
		t.Helper()
		g := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "crdup.opgate.dev/v1", "kind": "Gizmo",
			"metadata": map[string]any{"name": name, "namespace": ns}, "spec": map[string]any{}}}
		eventually(t, 20*time.Second, func() error { // the new CRD takes a moment to be served
			_, err := dyn(t).Resource(gizmos).Namespace(ns).Create(ctx, g, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		})
	}
	statusOf := func(name string) map[string]any {
		g, err := dyn(t).Resource(gizmos).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		st, _, _ := unstructured.NestedMap(g.Object, "status")
		return st
	}
	h := newHandler(t, ok(map[string]any{"status": map[string]any{"known": "k", "extra": "e"}}))
	const opName = "gizmos"
	op := operatorFor(t, opName, ns, h.URL, func(s *spec.OperatorSpec) {
		s.Watch.APIVersion, s.Watch.Kind = "crdup.opgate.dev/v1", "Gizmo"
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	_, reg := startGatewayWithMetrics(t, op)
	warnings := func() float64 {
		return counter(t, reg, "opgate_events_total", map[string]string{"operator": opName, "type": "Warning"})
	}

	createGizmo("before")
	eventually(t, 30*time.Second, func() error {
		if statusOf("before")["known"] != "k" {
			return fmt.Errorf("status of gizmo before = %v, want known: k", statusOf("before"))
		}
		return hasEvent(t, ns, "before", "Warning", "StatusFieldsPruned")
	})

	upgraded := gizmoCRD(t, true)
	eventually(t, 10*time.Second, func() error {
		cur, err := crds.Get(ctx, upgraded.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		upgraded.SetResourceVersion(cur.GetResourceVersion())
		_, err = crds.Update(ctx, upgraded, metav1.UpdateOptions{})
		return err
	})
	// Every gizmo created from now on is checked against the upgraded
	// schema once the gateway has seen the upgrade: its extra field is
	// stored and it gets no warning. The warning is counted before the
	// status is written, so the count is final once the status is there.
	i := 0
	eventually(t, 30*time.Second, func() error {
		i++
		name := fmt.Sprintf("after-%d", i)
		before := warnings()
		createGizmo(name)
		var st map[string]any
		eventually(t, 20*time.Second, func() error {
			if st = statusOf(name); st["known"] != "k" {
				return fmt.Errorf("status of gizmo %s = %v, want known: k", name, st)
			}
			return nil
		})
		if st["extra"] != "e" {
			return fmt.Errorf("gizmo %s: status.extra not stored (%v): the API server has not served the upgrade yet", name, st)
		}
		if n := warnings() - before; n != 0 {
			return fmt.Errorf("gizmo %s: %v warning event(s) after the CRD upgrade, want none (its status schema knows extra)", name, n)
		}
		return nil
	})
}
