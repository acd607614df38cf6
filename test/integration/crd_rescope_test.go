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
)

// scopedCRD is plainCRD of the given scope ("Namespaced" or "Cluster").
func scopedCRD(t *testing.T, group, kind, scope string) *unstructured.Unstructured {
	t.Helper()
	crd := plainCRD(t, group, kind)
	if err := unstructured.SetNestedField(crd.Object, scope, "spec", "scope"); err != nil {
		t.Fatal(err)
	}
	return crd
}

// A CRD deleted and created again with the other scope is another kind
// to the REST mapper: the running operator must take it up (informers,
// writes and the decisions that hang on the scope) without a restart.
func TestWatchedKindRecreatedWithTheOtherScopeIsFollowed(t *testing.T) {
	for _, tt := range []struct {
		name          string
		before, after string // the CRD's scope
		namespaces    bool   // spec.watch.namespaces set to the test's
		readyAfter    string
	}{
		{"namespaced to cluster", "Namespaced", "Cluster", false, "True/Running"},
		{"cluster to namespaced", "Cluster", "Namespaced", false, "True/Running"},
		{"cluster to namespaced, watch namespaces", "Cluster", "Namespaced", true, "True/Running"},
		{"namespaced to cluster, watch namespaces", "Namespaced", "Cluster", true, "False/NamespacesOnClusterScopedKind"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			slug := strings.NewReplacer(" ", "", ",", "").Replace(tt.name)
			group := slug + ".rescope.opgate.dev"
			name := "rescope-" + strings.NewReplacer(" ", "-", ",", "").Replace(tt.name)
			things := dyn(t).Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "things"})
			ns := newNamespace(t)
			createCRD(t, scopedCRD(t, group, "Thing", tt.before))
			h := newHandler(t, ok(nil))
			startGateway(t)
			watchNS := ""
			if tt.namespaces {
				watchNS = ", namespaces: [" + ns + "]"
			}
			readyBefore := "True/Running"
			if tt.namespaces && tt.before == "Cluster" {
				readyBefore = "False/NamespacesOnClusterScopedKind"
			}
			createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: %s/v1, kind: Thing%s}
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, name, group, watchNS, h.URL))
			waitReady(t, name, readyBefore)

			// create makes a Thing of the CRD's scope, retrying while a
			// new CRD is not served yet.
			create := func(obj, scope string) {
				t.Helper()
				eventually(t, 30*time.Second, func() error {
					u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Thing",
						"metadata": map[string]any{"name": obj}}}
					r := things.Namespace("")
					if scope == "Namespaced" {
						u.SetNamespace(ns)
						r = things.Namespace(ns)
					}
					_, err := r.Create(ctx, u, metav1.CreateOptions{})
					if apierrors.IsAlreadyExists(err) {
						return nil
					}
					return err
				})
			}
			created := func(obj string) func() error {
				return func() error {
					for _, req := range h.calls("create") {
						if req.Event == callbacks.EventCreate && req.Object != nil && req.Object.GetName() == obj {
							return nil
						}
					}
					return fmt.Errorf("no create callback for %s; operator Ready = %s", obj, readyCondition(t, name))
				}
			}
			if readyBefore == "True/Running" {
				create("before", tt.before)
				eventually(t, 30*time.Second, created("before"))
			}

			crdName := "things." + group
			deleteCRD(t, crdName)
			createCRD(t, scopedCRD(t, group, "Thing", tt.after))
			if tt.readyAfter == "True/Running" {
				create("after", tt.after)
				eventually(t, 60*time.Second, created("after"))
			}
			waitReady(t, name, tt.readyAfter)
		})
	}
}

// A child kind's CRD created again with the other scope changes where its
// children are written and how they are owned: a namespaced Holder's
// children, namespaced Things in its namespace before, are cluster-scoped
// Things (owned by label) after.
func TestChildKindRecreatedWithTheOtherScopeIsFollowed(t *testing.T) {
	ctx := context.Background()
	const group = "child.rescope.opgate.dev"
	ns := newNamespace(t)
	createCRD(t, plainCRD(t, group, "Holder"))
	createCRD(t, scopedCRD(t, group, "Thing", "Namespaced"))
	holders := dyn(t).Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "holders"})
	things := dyn(t).Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "things"})
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		child := map[string]any{"apiVersion": group + "/v1", "kind": "Thing",
			"metadata": map[string]any{"name": req.Object.GetName() + "-thing"}}
		return 200, map[string]any{"children": []any{child}}
	})
	startGateway(t)
	const name = "rescope-child"
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %[1]s}
spec:
  watch: {apiVersion: %[2]s/v1, kind: Holder, namespaces: [%[3]s]}
  children: [{apiVersion: %[2]s/v1, kind: Thing}]
  handler: {url: %[4]q}
  callbacks: [{id: create, events: [create]}]
`, name, group, ns, h.URL))
	waitReady(t, name, "True/Running")
	createHolder := func(obj string) {
		t.Helper()
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Holder",
			"metadata": map[string]any{"name": obj, "namespace": ns}}}
		if _, err := holders.Namespace(ns).Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	childIn := func(namespace, obj string) func() error {
		return func() error {
			if _, err := things.Namespace(namespace).Get(ctx, obj, metav1.GetOptions{}); err != nil {
				return fmt.Errorf("child %s: %w; operator Ready = %s", obj, err, readyCondition(t, name))
			}
			return nil
		}
	}
	createHolder("before")
	eventually(t, 30*time.Second, childIn(ns, "before-thing"))

	deleteCRD(t, "things."+group)
	createCRD(t, scopedCRD(t, group, "Thing", "Cluster"))
	eventually(t, 30*time.Second, func() error { // served
		_, err := things.List(ctx, metav1.ListOptions{})
		return err
	})
	createHolder("after")
	eventually(t, 60*time.Second, childIn("", "after-thing"))
	waitReady(t, name, "True/Running")
}

// A child kind's CRD created again with the other scope rebuilds the
// operator's controller, not the process: a parent it handled already is
// not resumed, and the requeueAfter its create asked for still comes.
func TestAChildKindsRescopeNeitherResumesNorForgetsRequeues(t *testing.T) {
	ctx := context.Background()
	const group = "memory.rescope.opgate.dev"
	ns := newNamespace(t)
	createCRD(t, plainCRD(t, group, "Holder"))
	createCRD(t, scopedCRD(t, group, "Thing", "Namespaced"))
	holders := dyn(t).Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "holders"})
	things := dyn(t).Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "things"})
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "create" && req.Object.GetName() == "before" {
			return 200, map[string]any{"requeueAfter": "25s"}
		}
		return 200, map[string]any{}
	})
	startGateway(t)
	const name = "rescope-memory"
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %[1]s}
spec:
  watch: {apiVersion: %[2]s/v1, kind: Holder, namespaces: [%[3]s]}
  children: [{apiVersion: %[2]s/v1, kind: Thing}]
  handler: {url: %[4]q}
  callbacks: [{id: create, events: [create]}, {id: resume, events: [resume]}]
`, name, group, ns, h.URL))
	waitReady(t, name, "True/Running")
	createHolder := func(obj string) {
		t.Helper()
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Holder",
			"metadata": map[string]any{"name": obj, "namespace": ns}}}
		if _, err := holders.Namespace(ns).Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	callsFor := func(cb, obj string) int {
		n := 0
		for _, r := range h.calls(cb) {
			if r.Object != nil && r.Object.GetName() == obj {
				n++
			}
		}
		return n
	}
	createHolder("before")
	eventually(t, 30*time.Second, func() error {
		if callsFor("create", "before") == 0 {
			return fmt.Errorf("no create for before")
		}
		return nil
	})
	start := time.Now()

	deleteCRD(t, "things."+group)
	createCRD(t, scopedCRD(t, group, "Thing", "Cluster"))
	eventually(t, 30*time.Second, func() error {
		_, err := things.List(ctx, metav1.ListOptions{})
		return err
	})
	createHolder("after")
	eventually(t, 60*time.Second, func() error {
		if callsFor("create", "after") == 0 {
			return fmt.Errorf("no create for after")
		}
		return nil
	})
	// The rebuilt controller takes its first pass over before at once; the
	// requeue asked before the rescope comes 25s after the first create.
	eventually(t, 60*time.Second, func() error {
		if n := callsFor("create", "before"); n < 2 {
			return fmt.Errorf("the create callback's requeueAfter 25s, asked before a child CRD was rescoped, never came (create calls for before: %d after %s)", n, time.Since(start).Round(time.Second))
		}
		return nil
	})
	if n := callsFor("resume", "before"); n > 0 {
		t.Errorf("resume called %d time(s) on an object this gateway process had handled, after a child CRD was rescoped", n)
	}
}
