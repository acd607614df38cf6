package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// While the gateway cannot write an object's state annotation (the API
// server refuses or is down), a failing callback is still retried as the
// same delivery: the same uid, the attempt counting up, and the backoff
// growing, rather than a fresh delivery every pass (docs/contract.md,
// "Request": uid is the same on every retry of one delivery).
func TestRetriesKeepTheDeliveryWhileTheStateCannotBeWritten(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(callbacks.Request) (int, any) { return http.StatusServiceUnavailable, nil })
	op := operatorFor(t, "stateless", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "make", Events: []spec.Event{spec.EventCreate}}}
		s.Retry = fastRetry(100 * time.Millisecond)
	})
	all := []string{"*"}
	// Widgets may be read, and their status written, but not patched: the
	// state annotation cannot be written.
	c, _ := impersonatedConfig(t, "opgate-nopatch", []rbacv1.PolicyRule{
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets/status"}, Verbs: all},
		{APIGroups: []string{"", "apps", spec.Group, "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	}, 0)
	runGateway(t, c, runner.Options{Operators: []*spec.WebhookOperator{op}})
	w := createWidget(t, ns, "w", 1)

	eventually(t, 30*time.Second, func() error { return calledFor(h, "make", w.GetUID(), 3) })
	calls := h.calls("make")[:3]
	for i, req := range calls {
		if req.UID != calls[0].UID || req.Attempt != i+1 {
			t.Fatalf("call %d: delivery %s attempt %d, want delivery %s attempt %d (all calls: %s)",
				i+1, req.UID, req.Attempt, calls[0].UID, i+1, deliveries(calls))
		}
	}
}

func deliveries(reqs []callbacks.Request) string {
	s := ""
	for _, r := range reqs {
		s += fmt.Sprintf("[%s #%d] ", r.UID, r.Attempt)
	}
	return s
}
