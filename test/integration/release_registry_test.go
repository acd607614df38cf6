package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// operatorDoc is a WebhookOperator watching Widgets with a create and a
// delete callback; watch is the YAML flow mapping of spec.watch, callbacks
// of spec.callbacks (empty: create and cleanup).
func operatorDoc(name, watch, url, callbacks string) string {
	if callbacks == "" {
		callbacks = `[{id: create, events: [create]}, {id: cleanup, events: [delete]}]`
	}
	return fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: %s
  handler: {url: %q}
  callbacks: %s
`, name, watch, url, callbacks)
}

// widgetWatch is the watch of the test Widgets in namespace ns.
func widgetWatch(ns string) string {
	return fmt.Sprintf("{apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}", ns)
}

// replaceOperatorSpec replaces the spec of a WebhookOperator object.
func replaceOperatorSpec(t *testing.T, name, doc string) {
	t.Helper()
	next := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &next.Object); err != nil {
		t.Fatalf("test WebhookOperator: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		cur, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Object["spec"] = next.Object["spec"]
		_, err = dyn(t).Resource(engine.OperatorResource).Update(context.Background(), cur, metav1.UpdateOptions{})
		return err
	})
}

func waitOperatorGone(t *testing.T, name string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if _, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("WebhookOperator %s still there (err %v): %s", name, err, readyCondition(t, name))
		}
		return nil
	})
}

func TestLiveSpecChangeReleasesObjectsNoLongerWatched(t *testing.T) {
	const both = "{apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%[1]s, %[2]s]}"
	for _, tt := range []struct {
		name          string
		before, after string      // spec.watch; %[1]s and %[2]s are the two namespaces
		kept, freed   [][2]string // {namespace 1 or 2, widget name}
	}{
		{
			name: "namespaces narrowed", before: both,
			after: "{apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%[1]s]}",
			kept:  [][2]string{{"1", "plain"}, {"1", "gold"}},
			freed: [][2]string{{"2", "plain"}, {"2", "gold"}},
		},
		{
			name: "label selector narrowed", before: both,
			after: "{apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%[1]s, %[2]s], labelSelector: {matchLabels: {tier: gold}}}",
			kept:  [][2]string{{"1", "gold"}, {"2", "gold"}},
			freed: [][2]string{{"1", "plain"}, {"2", "plain"}},
		},
		{
			name: "watched kind changed", before: both,
			after: "{apiVersion: v1, kind: ConfigMap, namespaces: [%[1]s, %[2]s]}",
			freed: [][2]string{{"1", "plain"}, {"1", "gold"}, {"2", "plain"}, {"2", "gold"}},
		},
	} {
		// Namespace-scoped: the gateway may list Widgets only in the two
		// namespaces (Roles from the spec before), never cluster-wide.
		for _, scoped := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/namespace-scoped RBAC %t", tt.name, scoped), func(t *testing.T) {
				ns := map[string]string{"1": newNamespace(t), "2": newNamespace(t)}
				h := newHandler(t, ok(nil))
				name := fmt.Sprintf("narrowed-%d", time.Now().UnixNano()%100000)
				createOperatorObject(t, operatorDoc(name, fmt.Sprintf(tt.before, ns["1"], ns["2"]), h.URL, ""))
				if scoped {
					limited, _ := namespaceScopedConfig(t, name)
					runGateway(t, limited, runner.Options{})
				} else {
					startGateway(t)
				}
				for _, n := range []string{"1", "2"} {
					createWidget(t, ns[n], "plain", 1)
					createLabelledWidget(t, ns[n], "gold", map[string]string{"tier": "gold"})
				}
				for _, at := range append(append([][2]string{}, tt.kept...), tt.freed...) {
					eventually(t, 30*time.Second, func() error { return heldBy(t, ns[at[0]], at[1], name) })
					eventually(t, 30*time.Second, func() error { return stateHandled(t, ns[at[0]], at[1], name) })
				}
				replaceOperatorSpec(t, name, operatorDoc(name, fmt.Sprintf(tt.after, ns["1"], ns["2"]), h.URL, ""))
				for _, at := range tt.freed {
					eventually(t, 20*time.Second, func() error { return releasedBy(t, ns[at[0]], at[1], name) })
				}
				for _, at := range tt.kept {
					if err := heldBy(t, ns[at[0]], at[1], name); err != nil {
						t.Errorf("an object the new spec still watches was released: %v", err)
					}
				}
			})
		}
	}
}

func TestStartupSweepReleasesKindTheWebhookOperatorNoLongerWatches(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	stop := startGateway(t)
	createOperatorObject(t, operatorDoc("rekinded", fmt.Sprintf("{apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}", ns), h.URL, ""))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return heldBy(t, ns, "example", "rekinded") })
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", "rekinded") })
	stop()
	// Changed while no gateway runs: the next one must still let go.
	replaceOperatorSpec(t, "rekinded", operatorDoc("rekinded", fmt.Sprintf("{apiVersion: v1, kind: ConfigMap, namespaces: [%s]}", ns), h.URL, ""))
	startGateway(t)
	eventually(t, 20*time.Second, func() error { return releasedBy(t, ns, "example", "rekinded") })
	deleteWidget(t, ns, "example")
	waitWidgetGone(t, ns, "example")
}

func TestDeletingWebhookOperatorWithInvalidSpecReleasesFinalizers(t *testing.T) {
	// Valid for the CRD's schema, refused by the gateway's semantic checks:
	// an interval on a callback that is not a timer.
	const invalid = `[{id: create, events: [create], interval: 1m}, {id: cleanup, events: [delete]}]`
	for _, tt := range []struct {
		name    string
		restart bool // the spec turns invalid while no gateway runs (stricter validation after an upgrade)
	}{
		{name: "invalid live edit"},
		{name: "invalid at start-up", restart: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(nil))
			stop := startGateway(t)
			name := fmt.Sprintf("invalid-%d", time.Now().UnixNano()%100000)
			watch := fmt.Sprintf("{apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}", ns)
			createOperatorObject(t, operatorDoc(name, watch, h.URL, ""))
			createWidget(t, ns, "example", 1)
			eventually(t, 20*time.Second, func() error { return heldBy(t, ns, "example", name) })
			if tt.restart {
				stop()
			}
			replaceOperatorSpec(t, name, operatorDoc(name, watch, h.URL, invalid))
			if tt.restart {
				startGateway(t)
			}
			// The refused spec is reported on SpecAccepted; a live edit leaves
			// the last valid generation running (Ready).
			eventually(t, 20*time.Second, func() error {
				if c := condition(t, name, spec.ConditionSpecAccepted); c == nil || c.Status != metav1.ConditionFalse || c.Reason != spec.ReasonInvalidSpec {
					return fmt.Errorf("SpecAccepted = %+v, want False/InvalidSpec", c)
				}
				return nil
			})
			if err := dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			waitOperatorGone(t, name)
			if err := releasedBy(t, ns, "example", name); err != nil {
				t.Errorf("deleting the WebhookOperator did not let go: %v", err)
			}
		})
	}
}
