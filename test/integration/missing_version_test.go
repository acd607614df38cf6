package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// A child kind whose CRD is installed but no longer serves the version
// the operator names (served: false on v1, v2 served) is not a kind
// "without a CRD": its objects are there, served as v2. The operator does
// not run without it, so a parent deleted meanwhile is held, not let go
// of while its label-owned child (cluster-scoped) stays; Ready says
// KindNotFound naming the version served and the field to update; once
// the operator names v2, the parent goes and its child with it.
// (Found by review rv45.)
func TestAChildKindNoLongerServedAtItsVersionHoldsItsParentsUntilTheOperatorNamesAServedOne(t *testing.T) {
	ctx := context.Background()
	group := "vermiss.opgate.dev"
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: bolts.`+group+`}
spec:
  group: `+group+`
  names: {kind: Bolt, plural: bolts, singular: bolt, listKind: BoltList}
  scope: Cluster
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    - name: v2
      served: true
      storage: false
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`), &crd.Object); err != nil {
		t.Fatal(err)
	}
	createCRD(t, crd)
	v1 := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "bolts"}
	v2 := schema.GroupVersionResource{Group: group, Version: "v2", Resource: "bolts"}
	eventually(t, 30*time.Second, func() error {
		_, err := dyn(t).Resource(v1).List(ctx, metav1.ListOptions{})
		return err
	})
	ns := newNamespace(t)
	boltName := ns + "-bolt"
	t.Cleanup(func() { _ = dyn(t).Resource(v2).Delete(ctx, boltName, metav1.DeleteOptions{}) })
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventCreate {
			return 200, map[string]any{"children": []any{map[string]any{
				"apiVersion": group + "/v1", "kind": "Bolt", "metadata": map[string]any{"name": boltName}}}}
		}
		return 200, nil
	})
	name := "vermiss"
	op := operatorFor(t, name, ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: group + "/v1", Kind: "Bolt"}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	})
	registerOperator(t, op)
	stop := startGateway(t)
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, func() error {
		_, err := dyn(t).Resource(v2).Get(ctx, boltName, metav1.GetOptions{})
		return err
	})
	stop()

	// The CRD stops serving v1; its objects are still there, served as v2.
	eventually(t, 30*time.Second, func() error {
		cur, err := dyn(t).Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		versions, _, _ := unstructured.NestedSlice(cur.Object, "spec", "versions")
		versions[0].(map[string]any)["served"] = false
		_ = unstructured.SetNestedSlice(cur.Object, versions, "spec", "versions")
		_, err = dyn(t).Resource(crdGVR).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	eventually(t, 30*time.Second, func() error {
		if _, err := dyn(t).Resource(v1).List(ctx, metav1.ListOptions{}); err == nil {
			return fmt.Errorf("v1 still served")
		}
		return nil
	})
	startGateway(t)
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(ctx, "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	leaked := func() {
		t.Helper()
		if _, err := getWidget(t, ns, "example"); apierrors.IsNotFound(err) {
			_, err := dyn(t).Resource(v2).Get(ctx, boltName, metav1.GetOptions{})
			t.Fatalf("parent let go of while its child kind is not run (child Bolt %s: get err %v); operator Ready = %s", boltName, err, readyCondition(t, name))
		}
	}
	eventually(t, 30*time.Second, func() error {
		leaked()
		c := readyCondition(t, name)
		if !strings.HasPrefix(c, "False/KindNotFound") || !strings.Contains(c, group+"/v2") || !strings.Contains(c, "spec.children[0].apiVersion") {
			return fmt.Errorf("Ready = %s, want False/KindNotFound naming %s/v2 and spec.children[0].apiVersion", c, group)
		}
		return nil
	})
	// Held on: what would let it go runs within moments once the operator
	// runs (TestParentsDeletedAfterAChildCRDWentAreLetGo).
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		leaked()
	}

	// The operator names the version served: the parent goes, its child with it.
	editOperator(t, name, func(s *spec.OperatorSpec) { s.Children[0].APIVersion = group + "/v2" })
	eventually(t, 30*time.Second, func() error {
		if _, err := getWidget(t, ns, "example"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("parent still there (err %v); operator Ready = %s", err, readyCondition(t, name))
		}
		b, err := dyn(t).Resource(v2).Get(ctx, boltName, metav1.GetOptions{})
		if err == nil && b.GetDeletionTimestamp() == nil {
			return fmt.Errorf("parent gone, its child Bolt %s still there", boltName)
		}
		return nil
	})
	if err := called(h, "cleanup", 1); err != nil {
		t.Fatal(err)
	}
}
