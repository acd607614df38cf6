package integration

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// While the state cannot be written, a pass that ends at the state the
// annotation already holds (a failed sync retried with success) forgets
// the failure it could not write: the next sync is a new delivery, not
// the failed one's attempt again.
func TestASucceededRetryIsForgottenWhileTheStateCannotBeWritten(t *testing.T) {
	ns := newNamespace(t)
	var failNext atomic.Bool
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "sync" && failNext.CompareAndSwap(true, false) {
			return http.StatusServiceUnavailable, nil
		}
		return 200, map[string]any{}
	})
	op := operatorFor(t, "forgets", ns, h.URL, func(s *spec.OperatorSpec) {
		s.ResyncPeriod = &spec.Duration{Duration: time.Second}
		s.Retry = fastRetry(100 * time.Millisecond)
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}, {ID: "sync", Events: []spec.Event{spec.EventSync}}}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "w", 1)
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "w", "forgets") })
	eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })
	stop()

	all := []string{"*"}
	c, _ := impersonatedConfig(t, "opgate-nopatch-sync", []rbacv1.PolicyRule{
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"test.opgate.dev"}, Resources: []string{"widgets/status"}, Verbs: all},
		{APIGroups: []string{"", "apps", spec.Group, "events.k8s.io", "coordination.k8s.io"}, Resources: all, Verbs: all},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	}, 0)
	before := len(h.calls("sync"))
	failNext.Store(true)
	runGateway(t, c, runner.Options{Operators: []*spec.WebhookOperator{op}})
	// The failure, its successful retry, and two syncs after it.
	eventually(t, 30*time.Second, func() error {
		if n := len(h.calls("sync")) - before; n < 4 {
			return fmt.Errorf("%d sync calls since the restart, want 4", n)
		}
		return nil
	})
	calls := h.calls("sync")[before:]
	failed, retried := calls[0], calls[1]
	if retried.UID != failed.UID || retried.Attempt != 2 {
		t.Fatalf("retry after the failure: %s", deliveries(calls))
	}
	for _, later := range calls[2:4] {
		if later.UID == failed.UID || later.Attempt != 1 {
			t.Fatalf("a sync after the successful retry continues the failed delivery: %s", deliveries(calls))
		}
	}
}
