package integration

import (
	"context"
	"fmt"
	"net/http"
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
