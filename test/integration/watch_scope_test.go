package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// A cluster-scoped kind has no namespaces to watch it in: an operator
// watching one with spec.watch.namespaces is refused once its kind is
// resolved, with a reason saying so (not KindNotFound, which sends the
// user after a CRD that is there). It touches no object and sends
// nothing. Being the registration's own fault, it leaves a registry-mode
// gateway ready; with -f, /readyz names it, as any operator of the files
// that does not run.
func TestClusterScopedWatchedKindWithWatchNamespacesIsRefused(t *testing.T) {
	const reason = spec.ReasonNamespacesOnClusterScopedKind
	for _, tc := range []struct {
		name  string
		start func(t *testing.T, name, ns, url string) *runner.Gateway
		// refused waits until the refusal shows where this mode says it
		// and returns its message.
		refused func(t *testing.T, gw *runner.Gateway, name string) string
	}{
		{
			name: "registry",
			start: func(t *testing.T, name, ns, url string) *runner.Gateway {
				gw := runGateway(t, cfg, runner.Options{})
				createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Gadget, namespaces: [%s]}
  handler: {url: %q}
  callbacks: [{id: create, events: [create, sync]}]
`, name, ns, url))
				return gw
			},
			refused: func(t *testing.T, gw *runner.Gateway, name string) string {
				waitReady(t, name, "False/"+reason)
				eventually(t, 20*time.Second, func() error { return hasEvent(t, metav1.NamespaceDefault, name, "Warning", reason) })
				if err := gw.Ready(); err != nil {
					t.Errorf("the gateway is out of service because of one registration's own fault: %v", err)
				}
				// The spec is valid: only the kind's scope, from discovery, refuses it.
				if c := condition(t, name, spec.ConditionSpecAccepted); c == nil || c.Status != metav1.ConditionTrue {
					t.Errorf("SpecAccepted = %+v, want True", c)
				}
				return readyCondition(t, name)
			},
		},
		{
			name: "file",
			start: func(t *testing.T, name, ns, url string) *runner.Gateway {
				return runGateway(t, cfg, runner.Options{Operators: []*spec.WebhookOperator{
					operatorFor(t, name, ns, url, func(s *spec.OperatorSpec) {
						s.Watch.Kind = "Gadget"
						s.Children = nil
						s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate, spec.EventSync}}}
					}),
				}})
			},
			refused: func(t *testing.T, gw *runner.Gateway, name string) string {
				var msg string
				eventually(t, 20*time.Second, func() error {
					err := gw.Ready()
					if want := fmt.Sprintf("operator %s not running (%s: ", name, reason); err == nil || !strings.Contains(err.Error(), want) {
						return fmt.Errorf("Ready() = %v, want an error with %q", err, want)
					}
					msg = err.Error()
					return nil
				})
				return msg
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			name := "gadgets-in-ns-" + tc.name
			h := newHandler(t, ok(nil))
			createGadget(t, ns, map[string]any{"test": ns})
			gw := tc.start(t, name, ns, h.URL)

			msg := tc.refused(t, gw, name)
			for _, want := range []string{"spec.watch.namespaces", "cluster-scoped", "Gadget"} {
				if !strings.Contains(msg, want) {
					t.Errorf("refusal %q does not name %q", msg, want)
				}
			}
			g, err := dyn(t).Resource(gadgets).Get(context.Background(), ns, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(g.GetFinalizers()) != 0 || g.GetAnnotations()["opgate.dev/state."+name] != "" {
				t.Errorf("a refused operator touched Gadget %s: finalizers %v, annotations %v", ns, g.GetFinalizers(), g.GetAnnotations())
			}
			for _, cb := range []string{"create", "sync"} {
				if n := len(h.calls(cb)); n != 0 {
					t.Errorf("the handler got %d %s calls; a refused operator must send nothing", n, cb)
				}
			}
		})
	}
}
