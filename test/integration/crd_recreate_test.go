package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/spec"
)

var sprockets = schema.GroupVersionResource{Group: "recreate.opgate.dev", Version: "v1", Resource: "sprockets"}

const sprocketCRDName = "sprockets.recreate.opgate.dev"

// sprocketCRD is a CRD of this scenario alone: deleting it deletes no other
// test's objects.
func sprocketCRD(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	err := yaml.Unmarshal([]byte(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: `+sprocketCRDName+`}
spec:
  group: recreate.opgate.dev
  names: {kind: Sprocket, plural: sprockets, singular: sprocket, listKind: SprocketList}
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
            spec: {type: object, properties: {image: {type: string}}}
            status: {type: object, properties: {message: {type: string}}}
`), &u.Object)
	if err != nil {
		t.Fatalf("test CRD: %v", err)
	}
	return u
}

func TestWatchedCRDDeletedAndRecreatedLosesNoChange(t *testing.T) {
	ctx := context.Background()
	crds := dyn(t).Resource(crdGVR)
	createCRD := func() {
		t.Helper()
		if _, err := crds.Create(ctx, sprocketCRD(t), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD: %v", err)
		}
	}
	createCRD()
	t.Cleanup(func() { _ = crds.Delete(ctx, sprocketCRDName, metav1.DeleteOptions{}) })
	ns := newNamespace(t)
	run := newFaultRunOf(t, ns, sprockets, "Sprocket")
	srv := newRecordedServer(t, run, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeAnswer(w, req)
	}))
	op := run.expect(faultOperator(t, "sprockets", ns, srv.URL, 2*time.Second, func(s *spec.OperatorSpec) {
		s.Watch.APIVersion, s.Watch.Kind = "recreate.opgate.dev/v1", "Sprocket"
	}))
	startGateway(t, op)

	// createAll retries while a new CRD is not served yet.
	createAll := func(prefix string) {
		t.Helper()
		for i := range 3 {
			name := fmt.Sprintf("%s%d", prefix, i)
			eventually(t, 30*time.Second, func() error {
				err := run.create(ctx, name, "v1")
				if apierrors.IsAlreadyExists(err) {
					return nil
				}
				return err
			})
			if err := run.setImage(ctx, name, "v2"); err != nil {
				t.Fatal(err)
			}
		}
	}
	createAll("before")
	run.chk.AssertEventually(t, 60*time.Second)

	// Deleting the CRD deletes every Sprocket: each is a deletion the
	// delete callback is owed, and the CRD goes only once they are gone.
	list, err := run.client.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		run.chk.Record(t, "deleted", &list.Items[i])
	}
	deleted := time.Now()
	if err := crds.Delete(ctx, sprocketCRDName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		if _, err := crds.Get(ctx, sprocketCRDName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("CRD still there (err %v)", err)
		}
		return nil
	})
	t.Logf("CRD gone %s after its deletion", since(deleted))

	createCRD()
	recreated := time.Now()
	createAll("after")
	_, took := run.chk.AssertEventually(t, 60*time.Second)
	t.Logf("CRD re-created: invariants hold %s after it (%s after the last change)", since(recreated), took.Round(100*time.Millisecond))
}

// boltCRD is the Bolt CRD of group, with or without the status
// subresource; its status keeps whatever it is given.
func boltCRD(t *testing.T, group string, subresource bool) *unstructured.Unstructured {
	t.Helper()
	sub := ""
	if subresource {
		sub = "      subresources: {status: {}}\n"
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: bolts.`+group+`}
spec:
  group: `+group+`
  names: {kind: Bolt, plural: bolts, singular: bolt, listKind: BoltList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
`+sub+`      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {size: {type: integer}}}
            status: {type: object, x-kubernetes-preserve-unknown-fields: true}
`), &u.Object); err != nil {
		t.Fatalf("test CRD: %v", err)
	}
	return u
}

// A CRD deleted and created again starts at generation 1 again, as the old
// one may have been: the gateway must still take it for the new CRD it is.
// Here the new one has the status subresource the old one lacked, so the
// status is written there (merge-patched into the object, the API server
// would drop it), and status.conditions, refused on the old one, runs.
func TestRecreatedCRDIsTakenForANewOne(t *testing.T) {
	for _, tt := range []struct {
		name        string
		conditions  bool
		readyBefore string // on the CRD without the status subresource
	}{
		{"handler status", false, "True/Running"},
		{"conditions", true, "False/StatusSubresourceMissing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			group := strings.ToLower(strings.ReplaceAll(tt.name, " ", "")) + ".recreate.opgate.dev"
			crdName := "bolts." + group
			bolts := dyn(t).Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "bolts"})
			crds := dyn(t).Resource(crdGVR)
			if _, err := crds.Create(ctx, boltCRD(t, group, false), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = crds.Delete(ctx, crdName, metav1.DeleteOptions{}) })
			ns := newNamespace(t)
			h := newHandler(t, ok(map[string]any{"status": map[string]any{"message": "ready"}}))
			startGateway(t)
			name := "bolts-" + strings.ReplaceAll(tt.name, " ", "-")
			createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: %s/v1, kind: Bolt, namespaces: [%s]}
  handler: {url: %q}
  status: {conditions: %v}
  callbacks: [{id: create, events: [create]}]
`, name, group, ns, h.URL, tt.conditions))
			waitReady(t, name, tt.readyBefore)
			create := func(obj string) {
				t.Helper()
				eventually(t, 30*time.Second, func() error { // the new CRD may not be served yet
					b := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Bolt",
						"metadata": map[string]any{"name": obj, "namespace": ns}, "spec": map[string]any{"size": int64(1)}}}
					_, err := bolts.Namespace(ns).Create(ctx, b, metav1.CreateOptions{})
					if apierrors.IsAlreadyExists(err) {
						return nil
					}
					return err
				})
			}
			handled := func(obj string) func() error {
				return func() error {
					o, err := bolts.Namespace(ns).Get(ctx, obj, metav1.GetOptions{})
					if err != nil {
						return err
					}
					if msg, _, _ := unstructured.NestedString(o.Object, "status", "message"); msg != "ready" {
						return fmt.Errorf("%s: status %v, want the handler's message; operator Ready = %s", obj, o.Object["status"], readyCondition(t, name))
					}
					return nil
				}
			}
			if !tt.conditions {
				create("before")
				eventually(t, 30*time.Second, handled("before"))
			}

			deleteCRD(t, crdName)
			if _, err := crds.Create(ctx, boltCRD(t, group, true), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			create("after")
			eventually(t, 60*time.Second, handled("after"))
			waitReady(t, name, "True/Running")
		})
	}
}

// plainCRD is a namespaced CRD of group/kind (plural: kind in lower case
// plus "s") whose one version, v1, keeps any field; no subresources.
func plainCRD(t *testing.T, group, kind string) *unstructured.Unstructured {
	t.Helper()
	plural := strings.ToLower(kind) + "s"
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(fmt.Sprintf(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %[1]s.%[2]s}
spec:
  group: %[2]s
  names: {kind: %[3]s, plural: %[1]s, singular: %[4]s, listKind: %[3]sList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, plural, group, kind, strings.ToLower(kind))), &crd.Object); err != nil {
		t.Fatal(err)
	}
	return crd
}

// createCRD creates crd and deletes it when the test ends.
func createCRD(t *testing.T, crd *unstructured.Unstructured) {
	t.Helper()
	crds := dyn(t).Resource(crdGVR)
	if _, err := crds.Create(context.Background(), crd.DeepCopy(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crds.Delete(context.Background(), crd.GetName(), metav1.DeleteOptions{}) })
}

// deleteCRD deletes the CRD name and waits until it is gone.
func deleteCRD(t *testing.T, name string) {
	t.Helper()
	crds := dyn(t).Resource(crdGVR)
	if err := crds.Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		if _, err := crds.Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("CRD %s still there (err %v)", name, err)
		}
		return nil
	})
}
