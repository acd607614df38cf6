package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// An operator whose kind is not served retries every few seconds until
// its CRD appears. The problem is logged once, not on every retry, and the
// retries ask discovery about that kind's group-version only: they do not
// make the shared mapper read all of discovery again (GET /apis) each time.
func TestAnOperatorWaitingForItsKindLogsOnceAndSparesDiscovery(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{}))
	requests := &requestLog{}
	config := rest.CopyConfig(cfg)
	config.Wrap(requests.wrap)
	logs := &logBuffer{}
	startGatewayWithConfig(t, config, runner.Options{Logger: logs.logger()}, operatorFor(t, "waitkind", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Watch.Kind = "Nonesuch" // not served
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	const line = "operator cannot start yet"
	exactly := func(path string) int {
		n := 0
		for _, s := range requests.matching(path) {
			if s == "GET "+path {
				n++
			}
		}
		return n
	}
	eventually(t, 30*time.Second, func() error {
		if !strings.Contains(logs.String(), line) {
			return fmt.Errorf("no %q logged yet", line)
		}
		return nil
	})
	full := exactly("/apis")
	// Three more retries, seen in either kind of discovery request.
	eventually(t, 60*time.Second, func() error {
		if n := exactly("/apis/test.opgate.dev/v1") + exactly("/apis") - full; n < 3 {
			return fmt.Errorf("%d retries seen", n)
		}
		return nil
	})
	if n := strings.Count(logs.String(), line); n != 1 {
		t.Errorf("%q logged %d times, want once for one problem", line, n)
	}
	if n := exactly("/apis") - full; n != 0 {
		t.Errorf("%d reads of all of discovery (GET /apis) while waiting for the kind, want none", n)
	}
}
