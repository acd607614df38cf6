package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// TestOperatorWhoseCRDTheGatewayMayNotReadIsNotReadyUntilAllowed: a
// gateway that may list and watch CRDs but not get one cannot build an
// operator of a custom kind (it reads the kind's CRD for its status
// schema). That is the gateway's RBAC, as a forbidden list of a watched
// kind is: Ready=False names the refusal, and /readyz says the operator
// does not run, until the rule is granted.
func TestOperatorWhoseCRDTheGatewayMayNotReadIsNotReadyUntilAllowed(t *testing.T) {
	const refused = `cannot get resource "customresourcedefinitions"`
	ns := newNamespace(t)
	all := []string{"*"}
	limited, grant := impersonatedConfig(t, "opgate-nocrdget", []rbacv1.PolicyRule{
		{APIGroups: []string{"", "test.opgate.dev", spec.Group, "events.k8s.io", "coordination.k8s.io", "apps"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"list", "watch"}},
	}, 1)
	h := newHandler(t, ok(nil))
	name := "nocrdget"
	gw := runGateway(t, limited, runner.Options{})
	createOperatorObject(t, operatorDoc(name, widgetWatch(ns), h.URL, `[{id: create, events: [create]}]`))
	waitReady(t, name, "False/CRDUnreadable")
	if c := readyCondition(t, name); !strings.Contains(c, refused) {
		t.Errorf("Ready = %s, want the API server's refusal %q", c, refused)
	}
	eventually(t, 30*time.Second, func() error {
		err := gw.Ready()
		if err == nil || !strings.Contains(err.Error(), "operator "+name) || !strings.Contains(err.Error(), refused) {
			return fmt.Errorf("Ready() = %v, want an error naming operator %s and %q", err, name, refused)
		}
		return nil
	})

	grant()
	createWidget(t, ns, "example", 1)
	eventually(t, 60*time.Second, func() error {
		if err := gw.Ready(); err != nil {
			return fmt.Errorf("still not ready after get was allowed: %v", err)
		}
		return called(h, "create", 1)
	})
	waitReady(t, name, "True/Running")
}
