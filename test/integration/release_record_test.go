package integration

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// startRecordingGateway runs a file-mode gateway that records the
// operators it runs in a ConfigMap, until the returned stop is called.
func startRecordingGateway(t *testing.T, record types.NamespacedName, ops ...*spec.WebhookOperator) (stop func()) {
	t.Helper()
	stop, _ = startGatewayWithOptions(t, runner.Options{OperatorRecord: record}, ops...)
	return stop
}

func TestRestartWithoutAnOperatorReleasesWhatItRecorded(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	withCleanup := func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	}
	keep, drop := operatorFor(t, "keep", ns, h.URL, withCleanup), operatorFor(t, "drop", ns, h.URL, withCleanup)
	record := types.NamespacedName{Namespace: ns, Name: "opgate-gateway"}
	stop := startRecordingGateway(t, record, keep, drop)
	// Another gateway, with its own operator on the same objects, stays up.
	startGateway(t, operatorFor(t, "foreign", ns, h.URL, withCleanup))
	createWidget(t, ns, "example", 1)
	for _, op := range []string{"keep", "drop", "foreign"} {
		eventually(t, 20*time.Second, func() error { return heldBy(t, ns, "example", op) })
		eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", op) })
	}
	stop()

	startRecordingGateway(t, record, keep)
	eventually(t, 20*time.Second, func() error { return releasedBy(t, ns, "example", "drop") })
	for _, op := range []string{"keep", "foreign"} {
		if err := heldBy(t, ns, "example", op); err != nil {
			t.Errorf("a finalizer of a running operator was released: %v", err)
		}
	}
}
