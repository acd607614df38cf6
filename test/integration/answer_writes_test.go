package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// rendezvous holds the first request of each of two kinds until one of
// the other kind is in flight too (or wait passes), and says whether two
// ever were: whether the client had both on the wire at once.
type rendezvous struct {
	match func(*http.Request) (kind int, ok bool)
	wait  time.Duration

	mu       sync.Mutex
	inFlight [2]int
	changed  chan struct{} // closed and replaced on every arrival
	held     [2]bool
	met      bool
}

func newRendezvous(wait time.Duration, match func(*http.Request) (int, bool)) *rendezvous {
	return &rendezvous{match: match, wait: wait, changed: make(chan struct{})}
}

func (z *rendezvous) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		kind, ok := z.match(r)
		if !ok {
			return rt.RoundTrip(r)
		}
		z.mu.Lock()
		z.inFlight[kind]++
		close(z.changed)
		z.changed = make(chan struct{})
		hold := !z.held[kind]
		z.held[kind] = true
		z.mu.Unlock()
		defer func() {
			z.mu.Lock()
			z.inFlight[kind]--
			z.mu.Unlock()
		}()
		for deadline := time.After(z.wait); ; {
			z.mu.Lock()
			if z.inFlight[1-kind] > 0 {
				z.met = true
			}
			met, changed := z.met, z.changed
			z.mu.Unlock()
			if met || !hold {
				break
			}
			select {
			case <-changed:
				continue
			case <-deadline:
			}
			break
		}
		return rt.RoundTrip(r)
	})
}

func (z *rendezvous) together() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.met
}

// TestChildAndStatusOfOneAnswerAreWrittenTogether: the children and the
// status of an answer are independent writes, so the worker sends them at
// once and holds the object for one round trip, not two; the state that
// marks the change handled still follows both.
func TestChildAndStatusOfOneAnswerAreWrittenTogether(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{
		"children": []any{deployment("together", 1)},
		"status":   map[string]any{"message": "made"},
	}))
	z := newRendezvous(5*time.Second, func(r *http.Request) (int, bool) {
		switch {
		case r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/widgets/together/status"):
			return 0, true
		case r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/deployments/together"):
			return 1, true
		}
		return 0, false
	})
	config := rest.CopyConfig(cfg)
	config.Wrap(z.wrap)
	startGatewayWithConfig(t, config, runner.Options{}, operatorFor(t, "together", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "make", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "together", 1)
	eventually(t, 30*time.Second, func() error {
		w, err := getWidget(t, ns, "together")
		if err != nil {
			return err
		}
		if msg, _, _ := unstructured.NestedString(w.Object, "status", "message"); msg != "made" {
			return fmt.Errorf("status.message = %q, want made", msg)
		}
		if _, ok := w.GetAnnotations()["opgate.dev/state.together"]; !ok {
			return fmt.Errorf("the create is not marked handled yet")
		}
		_, err = kube(t).AppsV1().Deployments(ns).Get(context.Background(), "together", metav1.GetOptions{})
		return err
	})
	if !z.together() {
		t.Fatal("the child's apply and the status patch of one answer were sent one after the other")
	}
}

// TestStatusOfAnAnswerWhoseChildIsRefusedDoesNotStay: the status is written
// alongside the children, but an answer whose child the API server refuses
// leaves the status as it was: it usually claims what the children are.
func TestStatusOfAnAnswerWhoseChildIsRefusedDoesNotStay(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(map[string]any{
		"children": []any{deployment("refused", -1)}, // replicas < 0: 422 Invalid, a permanent failure
		"status":   map[string]any{"message": "deployment ready"},
	}))
	startGateway(t, operatorFor(t, "refused", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "make", Events: []spec.Event{spec.EventCreate}}}
	}))
	createWidget(t, ns, "refused", 1)
	eventually(t, 30*time.Second, func() error {
		for _, e := range events(t, ns, "refused") {
			if e.Type == "Warning" && strings.Contains(e.Message, "failed permanently") {
				return nil
			}
		}
		return fmt.Errorf("no Warning of the permanent failure yet")
	})
	w, err := getWidget(t, ns, "refused")
	if err != nil {
		t.Fatal(err)
	}
	if msg, _, _ := unstructured.NestedString(w.Object, "status", "message"); msg == "deployment ready" {
		t.Fatalf("status.message = %q: the status of an answer whose child was refused stayed", msg)
	}
}

// TestCallbackAfterARefusedChildSeesTheStatusSetBack: the status set back
// after a refused child is the pass's too. A later callback of the pass
// gets the object as the API server has it, and its own answer of the
// same status is written, not judged "nothing would change".
func TestCallbackAfterARefusedChildSeesTheStatusSetBack(t *testing.T) {
	ns := newNamespace(t)
	made := map[string]any{"message": "made"}
	var mu sync.Mutex
	var bSaw []string // status.message in b's requests
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Callback {
		case "a":
			return 200, map[string]any{"status": made, "children": []any{deployment("refused", -1)}} // 422
		case "b":
			msg, _, _ := unstructured.NestedString(req.Object.Object, "status", "message")
			mu.Lock()
			bSaw = append(bSaw, msg)
			mu.Unlock()
			return 200, map[string]any{"status": made}
		}
		return 200, nil
	})
	startGateway(t, operatorFor(t, "setback", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "a", Events: []spec.Event{spec.EventCreate}},
			{ID: "b", Events: []spec.Event{spec.EventCreate}},
		}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 30*time.Second, func() error { return called(h, "b", 1) })
	eventually(t, 30*time.Second, func() error { return statusMessage(t, ns, "example", "made") })
	mu.Lock()
	defer mu.Unlock()
	if bSaw[0] != "" {
		t.Errorf("b's request carried status.message=%q, which the API server had set back", bSaw[0])
	}
}
