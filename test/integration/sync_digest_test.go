package integration

import (
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// The first status a sync writes, on an object that had none, is the
// sync's own write like any later one: sync is called once, not once more
// for it. (The status went from absent to the written fields; compared
// outside them, an empty status stayed where none had been.)
func TestTheFirstStatusASyncWritesCallsNoSecondSync(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Object.GetName() == "witness" {
			return 200, nil
		}
		return 200, map[string]any{"status": map[string]any{"message": "synced"}}
	})
	op := operatorFor(t, "firststatus", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
	})
	createWidget(t, ns, "a", 1)
	startGateway(t, op)
	eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })
	eventually(t, 10*time.Second, func() error { return statusMessage(t, ns, "a", "synced") })
	// A witness goes through a sync: by then the gateway has long seen
	// a's writes.
	createWidget(t, ns, "witness", 1)
	eventually(t, 20*time.Second, func() error { return calledForName(h, "sync", "witness") })
	if got := countFor(h, "sync", "a"); got != 1 {
		t.Fatalf("a synced %d times, want 1: the first status its sync wrote called it again", got)
	}
}
