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

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// A child kind's CRD removed (an uninstall that removes a dependency's
// CRDs first) while the gateway is down, or before an operator edit or a
// leader change restarts it: the operator starts without that kind, so its
// parents deleted afterwards are let go of (delete callback called,
// finalizer removed): a kind without a CRD has no objects, and deletion
// needs nothing of it. (Found by review rv43.)
func TestParentsDeletedAfterAChildCRDWentAreLetGo(t *testing.T) {
	ctx := context.Background()
	crds := dyn(t).Resource(crdGVR)
	group := "gonechild.opgate.dev"
	if _, err := crds.Create(ctx, boltCRD(t, group, true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crds.Delete(ctx, "bolts."+group, metav1.DeleteOptions{}) })
	bolts := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "bolts"}
	ns := newNamespace(t)
	eventually(t, 30*time.Second, func() error {
		_, err := dyn(t).Resource(bolts).Namespace(ns).List(ctx, metav1.ListOptions{})
		return err
	})
	h := newHandler(t, ok(nil))
	op := operatorFor(t, "gonechild", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: group + "/v1", Kind: "Bolt"}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil || !hasFinalizer(w, "opgate.dev/gonechild") {
			return fmt.Errorf("no finalizer yet (err %v)", err)
		}
		return called(h, "create", 1)
	})
	stop()
	deleteCRD(t, "bolts."+group)
	startGateway(t, op)
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(ctx, "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := getWidget(t, ns, "example"); apierrors.IsNotFound(err) {
			if err := called(h, "cleanup", 1); err != nil {
				t.Fatalf("parent let go of without its delete callback: %v", err)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	w, _ := getWidget(t, ns, "example")
	t.Fatalf("parent stuck Terminating 30s after its deletion (cleanup called %d times), finalizers %v, conditions %v",
		len(h.calls("cleanup")), w.GetFinalizers(), w.Object["status"])
}

// An operator started while the CRD of one of its child or related kinds
// is missing runs without that kind: Ready says False/KindNotFound naming
// it, parents are deleted and let go of, a child of it answered fails
// (temporary, KindNotFound) and is retried; once the CRD is created again
// the operator takes the kind up by itself: the child is applied, related
// objects of it are sent.
func TestAMissingChildOrRelatedKindIsNamedAndTakenUpOnceItsCRDIsCreated(t *testing.T) {
	for _, role := range []string{"children", "related"} {
		t.Run(role, func(t *testing.T) {
			ctx := context.Background()
			group := role + ".missing.opgate.dev"
			name := "missing-" + role
			bolts := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "bolts"}
			ns := newNamespace(t)
			crd := boltCRD(t, group, true)
			served := func() error {
				_, err := dyn(t).Resource(bolts).Namespace(ns).List(ctx, metav1.ListOptions{})
				return err
			}
			createCRD(t, crd)
			eventually(t, 30*time.Second, served)
			boltKey := callbacks.KindKey(group+"/v1", "Bolt")
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if req.Callback == "create" {
					bolt := map[string]any{"apiVersion": group + "/v1", "kind": "Bolt",
						"metadata": map[string]any{"name": req.Object.GetName() + "-bolt"}}
					return 200, map[string]any{"children": []any{bolt}}
				}
				return 200, map[string]any{}
			})
			doc := fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %[1]s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%[2]s]}
  handler: {url: %[3]q}
`, name, ns, h.URL)
			if role == "children" {
				doc += fmt.Sprintf("  children: [{apiVersion: %s/v1, kind: Bolt}]\n", group)
				doc += "  callbacks: [{id: create, events: [create]}, {id: cleanup, events: [delete]}]\n"
			} else {
				doc += fmt.Sprintf("  related: [{apiVersion: %s/v1, kind: Bolt}]\n", group)
				doc += "  callbacks: [{id: sync, events: [sync]}, {id: cleanup, events: [delete]}]\n"
			}
			stop := startGateway(t)
			createOperatorObject(t, doc)
			waitReady(t, name, "True/Running")
			createWidget(t, ns, "early", 1)
			eventually(t, 30*time.Second, func() error {
				w, err := getWidget(t, ns, "early")
				if err != nil || !hasFinalizer(w, "opgate.dev/"+name) {
					return fmt.Errorf("no finalizer on early yet (err %v)", err)
				}
				return nil
			})

			// The gateway restarts while the kind's CRD is gone.
			stop()
			deleteCRD(t, crd.GetName())
			startGateway(t)
			eventually(t, 30*time.Second, func() error {
				c := readyCondition(t, name)
				if !strings.HasPrefix(c, "False/KindNotFound") || !strings.Contains(c, "Bolt") || !strings.Contains(c, role+"[0]") {
					return fmt.Errorf("Ready = %s, want False/KindNotFound naming %s[0] Bolt", c, role)
				}
				return nil
			})

			if err := dyn(t).Resource(widgets).Namespace(ns).Delete(ctx, "early", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, func() error {
				w, err := getWidget(t, ns, "early")
				if apierrors.IsNotFound(err) {
					return calledForName(h, "cleanup", "early")
				}
				return fmt.Errorf("parent still there (err %v): finalizers %v, delete callback called: %v; operator Ready = %s",
					err, w.GetFinalizers(), calledForName(h, "cleanup", "early"), readyCondition(t, name))
			})

			createWidget(t, ns, "late", 1)
			if role == "children" {
				// The child cannot be made: the call fails, temporarily,
				// saying why.
				eventually(t, 30*time.Second, func() error {
					for _, e := range events(t, ns, "late") {
						if e.Type == "Warning" && e.Reason == spec.ReasonKindNotFound && strings.Contains(e.Message, "the CRD of Bolt") {
							return nil
						}
					}
					return fmt.Errorf("no Warning KindNotFound naming the CRD of Bolt on late: %v", events(t, ns, "late"))
				})
			} else {
				eventually(t, 30*time.Second, func() error { return calledForName(h, "sync", "late") })
			}

			createCRD(t, crd)
			eventually(t, 30*time.Second, served)
			if role == "children" {
				eventually(t, 60*time.Second, func() error {
					_, err := dyn(t).Resource(bolts).Namespace(ns).Get(ctx, "late-bolt", metav1.GetOptions{})
					if err != nil {
						return fmt.Errorf("child late-bolt: %w; operator Ready = %s", err, readyCondition(t, name))
					}
					return nil
				})
			} else {
				bolt := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Bolt",
					"metadata": map[string]any{"name": "seen", "namespace": ns}}}
				if _, err := dyn(t).Resource(bolts).Namespace(ns).Create(ctx, bolt, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				eventually(t, 60*time.Second, func() error {
					for _, req := range h.calls("sync") {
						if req.Object != nil && req.Object.GetName() == "late" && req.Related[boltKey]["seen"] != nil {
							return nil
						}
					}
					return fmt.Errorf("no sync of late with the related Bolt seen; operator Ready = %s", readyCondition(t, name))
				})
			}
			waitReady(t, name, "True/Running")
		})
	}
}
