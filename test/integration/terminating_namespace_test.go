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

// TestStuckDeleteInATerminatingNamespaceIsLoggedAndRecorded: in a
// namespace being deleted the API server refuses new Events, so the
// Warning that tells how to release a finalizer held by a permanently
// failing delete callback cannot be recorded. The gateway logs the refused
// Event at warn level, with its message, and the object's state annotation
// keeps the failure (what `gateway status` reads).
func TestStuckDeleteInATerminatingNamespaceIsLoggedAndRecorded(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, failDeletePermanently(nil))
	logs := &logBuffer{}
	startGatewayWithOptions(t, runner.Options{Logger: logs.logger()}, operatorFor(t, "termns", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "cleanup", Events: []spec.Event{spec.EventDelete}}}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil || !hasFinalizer(w, "opgate.dev/termns") {
			return fmt.Errorf("no finalizer yet (err %v)", err)
		}
		return nil
	})
	t.Cleanup(func() { removeFinalizers(t, ns, "example") })
	if err := kube(t).CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// envtest runs no namespace controller: delete the widget as it would.
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error { return stateSettled(t, ns, "example", "termns") })
	w, err := getWidget(t, ns, "example")
	if err != nil {
		t.Fatal(err)
	}
	if st := w.GetAnnotations()["opgate.dev/state.termns"]; !strings.Contains(st, "backup bucket gone") {
		t.Errorf("the state annotation does not keep why the object is stuck: %s", st)
	}
	eventually(t, 10*time.Second, func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "namespace is being deleted") &&
				strings.Contains(line, ns+"/example") && strings.Contains(line, "release-finalizer") {
				return nil
			}
		}
		return fmt.Errorf("no warning logged for the Event the API server refused in the terminating namespace")
	})
}
