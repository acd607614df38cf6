package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/opgate/opgate/gateway/spec"
)

var deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}

// A built-in kind has no CRD to say whether it has the status subresource;
// the API server's discovery does (deployments/status, no
// configmaps/status). status.conditions: true on one without it is
// refused as on a CRD without it: Ready=False naming the missing
// subresource, and no object touched.
func TestConditionsOnABuiltInKindWithoutStatusSubresourceAreRefused(t *testing.T) {
	for _, tt := range []struct {
		name, apiVersion, kind string
		ready                  string // the operator's Ready, "<status>/<reason>"
		message                string // in Ready's message
	}{
		{"configmap", "v1", "ConfigMap", "False/StatusSubresourceMissing", "configmaps/status"},
		{"deployment", "apps/v1", "Deployment", "True/Running", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(nil))
			cm, err := kube(t).CoreV1().ConfigMaps(ns).Create(context.Background(),
				&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "example"}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create ConfigMap: %v", err)
			}
			startGateway(t)
			name := "builtinconds" + tt.name
			createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: %s, kind: %s, namespaces: [%s]}
  handler: {url: %q}
  status: {conditions: true}
  callbacks: [{id: create, events: [create]}]
`, name, tt.apiVersion, tt.kind, ns, h.URL))
			waitReady(t, name, tt.ready)
			if c := readyCondition(t, name); !strings.Contains(c, tt.message) {
				t.Errorf("Ready = %s: want %q named", c, tt.message)
			}
			if tt.kind != "ConfigMap" {
				return
			}
			n := modifiedWithin(t, "ConfigMap", 5*time.Second, func(ctx context.Context) (watch.Interface, error) {
				return kube(t).CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=example", ResourceVersion: cm.ResourceVersion})
			})
			if n != 0 || len(h.calls("create")) != 0 {
				t.Errorf("%d writes to the ConfigMap and %d calls: want none while refused", n, len(h.calls("create")))
			}
		})
	}
}

// A status answered for a built-in kind that has none (no status
// subresource in discovery: a ConfigMap) can never be written: a permanent
// InvalidStatus naming why, not a 404 retried for ever. A kind with the
// subresource gets it written there.
func TestAStatusAnsweredForABuiltInKindWithoutStatusFailsPermanently(t *testing.T) {
	for _, tt := range []struct {
		name, apiVersion, kind string
		create                 func(t *testing.T, ns string)
		get                    func(t *testing.T, ns string) map[string]any // the object
	}{
		{"configmap", "v1", "ConfigMap",
			func(t *testing.T, ns string) {
				if _, err := kube(t).CoreV1().ConfigMaps(ns).Create(context.Background(),
					&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "example"}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{}); err != nil {
					t.Fatalf("create ConfigMap: %v", err)
				}
			}, nil},
		{"deployment", "apps/v1", "Deployment",
			func(t *testing.T, ns string) {
				if _, err := dyn(t).Resource(deployments).Namespace(ns).Create(context.Background(),
					&unstructured.Unstructured{Object: deployment("example", 1)}, metav1.CreateOptions{}); err != nil {
					t.Fatalf("create Deployment: %v", err)
				}
			},
			func(t *testing.T, ns string) map[string]any {
				o, err := dyn(t).Resource(deployments).Namespace(ns).Get(context.Background(), "example", metav1.GetOptions{})
				if err != nil {
					t.Fatalf("get Deployment: %v", err)
				}
				return o.Object
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(map[string]any{"status": map[string]any{"collisionCount": int64(3)}}))
			startGateway(t, operatorFor(t, "builtinstatus"+tt.name, ns, h.URL, func(s *spec.OperatorSpec) {
				s.Watch = spec.WatchSpec{APIVersion: tt.apiVersion, Kind: tt.kind, Namespaces: []string{ns}}
				s.Children = nil
				s.Retry = fastRetry(200 * time.Millisecond)
				s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
			}))
			tt.create(t, ns)
			if tt.get != nil {
				eventually(t, 30*time.Second, func() error {
					if n, _, _ := unstructured.NestedInt64(tt.get(t, ns), "status", "collisionCount"); n != 3 {
						return fmt.Errorf("status.collisionCount %d, want the answered 3", n)
					}
					return nil
				})
				return
			}
			eventually(t, 30*time.Second, func() error {
				for _, e := range events(t, ns, "example") {
					if e.Type == "Warning" && e.Reason == "InvalidStatus" && strings.Contains(e.Message, "configmaps/status") {
						return nil
					}
				}
				return fmt.Errorf("no Warning InvalidStatus naming configmaps/status; handler called %d times", len(h.calls("create")))
			})
			// Ten times the first retry's delay: a temporary failure would
			// have been retried by now.
			time.Sleep(2 * time.Second)
			if n := len(h.calls("create")); n != 1 {
				t.Errorf("create called %d times: a status the kind cannot hold must fail once, for good", n)
			}
		})
	}
}
