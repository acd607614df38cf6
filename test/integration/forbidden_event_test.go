package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// A permission the gateway lacks is told where a user looks, not only in
// the log: a Warning Event on the WebhookOperator naming the resource and
// verb refused (besides Ready=False/Forbidden), and the operator's
// lastError clears once the permission is granted.
func TestForbiddenWatchIsAWarningEventOnTheOperator(t *testing.T) {
	const forbidden = `cannot list resource "deployments" in API group "apps"`
	ns := newNamespace(t)
	limited, grant := limitedConfig(t)
	h := newHandler(t, ok(nil))
	name := "forbidden-event"
	runGateway(t, limited, runner.Options{})
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  children: [{apiVersion: apps/v1, kind: Deployment}]
  handler: {url: %q}
  callbacks: [{id: create, events: [create]}]
`, name, ns, h.URL))
	eventually(t, 30*time.Second, func() error {
		for _, e := range events(t, metav1.NamespaceDefault, name) {
			if e.Type == "Warning" && e.Reason == spec.ReasonForbidden && e.InvolvedObject.Kind == spec.Kind && strings.Contains(e.Message, forbidden) {
				return nil
			}
		}
		return fmt.Errorf("no Warning Event %s on WebhookOperator %s saying %q", spec.ReasonForbidden, name, forbidden)
	})
	waitReady(t, name, "False/Forbidden")

	grant()
	waitReady(t, name, "True/Running")
	eventually(t, 30*time.Second, func() error {
		if e := operatorLastError(t, name); strings.Contains(e, forbidden) {
			return fmt.Errorf("lastError still %q after the permission was granted", e)
		}
		return nil
	})
}
