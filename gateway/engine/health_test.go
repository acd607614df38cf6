package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/opgate/opgate/gateway/spec"
)

var deployments = schema.GroupResource{Group: "apps", Resource: "deployments"}

func TestWatchHealthRemembersTheLastErrorUntilASuccess(t *testing.T) {
	forbidden := apierrors.NewForbidden(deployments, "", errors.New(`User "gw" cannot list resource "deployments"`))
	changes := 0
	h := &watchHealth{onChange: func() { changes++ }}
	steps := []struct {
		what        string
		err         error
		wantFailing string // "" when nothing fails
		wantChanges int
	}{
		{"deployments.apps", forbidden, "deployments.apps", 1},
		{"deployments.apps", forbidden, "deployments.apps", 1}, // the same error again: no change
		{"widgets.test.opgate.dev", io.ErrUnexpectedEOF, "deployments.apps", 1},
		{"widgets.test.opgate.dev", apierrors.NewResourceExpired("too old"), "deployments.apps", 1},
		{"deployments.apps", nil, "", 2},
		{"widgets.test.opgate.dev", fmt.Errorf("dial: %w", errors.New("connection refused")), "widgets.test.opgate.dev", 3},
		{"widgets.test.opgate.dev", nil, "", 4},
	}
	for i, s := range steps {
		if s.err == nil {
			h.observeCall(s.what, nil)
		} else {
			h.observeFailure(s.what, s.err)
		}
		what, _, failing := h.failing()
		if failing != (s.wantFailing != "") || what != s.wantFailing {
			t.Errorf("step %d: failing = %q (%v), want %q", i, what, failing, s.wantFailing)
		}
		if changes != s.wantChanges {
			t.Errorf("step %d: %d changes, want %d", i, changes, s.wantChanges)
		}
	}
}

// lostWatch is a watch call's error as client-go gives it, for a watch
// asked with query that failed with err.
func lostWatch(query string, err error) error {
	return fmt.Errorf("watch not opened: %w", &url.Error{Op: "Get", URL: "https://10.0.0.1/apis/test.opgate.dev/v1/widgets?" + query, Err: err})
}

func TestStoppingInformerReportsNoFailure(t *testing.T) {
	var h watchHealth
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	watchErrorHandler("widgets", &h)(ctx, nil, errNoWatch)
	if what, err, failing := h.failing(); failing {
		t.Errorf("%s failing with %v while it stops", what, err)
	}
	watchErrorHandler("widgets", &h)(context.Background(), nil, errNoWatch)
	if _, _, failing := h.failing(); !failing {
		t.Error("a running informer's failure is not reported")
	}
}

// TestWatchFailingAgainWithAnotherTimeoutIsNoChange: the reflector asks
// each watch for another random timeoutSeconds.
func TestWatchFailingAgainWithAnotherTimeoutIsNoChange(t *testing.T) {
	changes := 0
	h := &watchHealth{onChange: func() { changes++ }}
	h.observeCall("widgets", lostWatch("timeoutSeconds=331&watch=true", io.EOF))
	h.observeCall("widgets", lostWatch("timeoutSeconds=418&watch=true", io.EOF))
	if changes != 1 {
		t.Errorf("%d changes, want 1", changes)
	}
}

// TestConnectionResetFromAnotherLocalPortIsNoChange: each try dials from
// another local port, which is in the message.
func TestConnectionResetFromAnotherLocalPortIsNoChange(t *testing.T) {
	reset := func(port int) error {
		return lostWatch("watch=true", &net.OpError{Op: "read", Net: "tcp",
			Source: &net.TCPAddr{IP: net.IPv4(10, 244, 0, 5), Port: port},
			Addr:   &net.TCPAddr{IP: net.IPv4(10, 96, 0, 1), Port: 443},
			Err:    errors.New("read: connection reset by peer")})
	}
	changes := 0
	h := &watchHealth{onChange: func() { changes++ }}
	h.observeCall("widgets", reset(43210))
	h.observeCall("widgets", reset(43218))
	if changes != 1 {
		t.Errorf("%d changes, want 1", changes)
	}
	if _, err, _ := h.failing(); !strings.Contains(err.Error(), "10.96.0.1:443") || strings.Contains(err.Error(), "43218") {
		t.Errorf("message %q: want the API server's address and not the local port", err)
	}
}

func TestFailureIsReadWithoutTheQueryOfItsRequest(t *testing.T) {
	err := steady(lostWatch("timeoutSeconds=331&watch=true", io.EOF))
	if want := `watch not opened: Get "https://10.0.0.1/apis/test.opgate.dev/v1/widgets": EOF`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if !errors.Is(err, io.EOF) || !connectionFailed(err) {
		t.Errorf("%v no longer says what it wraps", err)
	}
}

func TestWatchFailureCarriesTheAPIServersWords(t *testing.T) {
	for _, tt := range []struct {
		name       string
		err        error
		wantReason string
		wantText   string
	}{
		{"RBAC", apierrors.NewForbidden(deployments, "", errors.New(`User "gw" cannot list resource "deployments"`)), spec.ReasonForbidden, `cannot list resource "deployments"`},
		// Its CRD deleted: the registration's own fault, as when it
		// starts so (docs/operations.md).
		{"resource missing", apierrors.NewNotFound(deployments, ""), spec.ReasonKindNotFound, "not found"},
		{"server failing", apierrors.NewInternalError(errors.New("etcd cluster is unavailable")), spec.ReasonWatchFailed, "etcd cluster is unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reason, msg := watchFailure("deployments.apps in namespace shop", tt.err)
			if reason != tt.wantReason || !strings.Contains(msg, tt.wantText) || !strings.Contains(msg, "deployments.apps in namespace shop") {
				t.Errorf("watchFailure = %s, %q; want %s naming the informer and %q", reason, msg, tt.wantReason, tt.wantText)
			}
		})
	}
}

func TestRegistrationStatusKeepsReadyForTheRunningGeneration(t *testing.T) {
	running := &OperatorState{Generation: 1, Ready: true, Reason: spec.ReasonRunning, Message: "watching", Stats: Stats{WatchedObjects: 3}}
	for _, tt := range []struct {
		name                   string
		reg                    registration
		wantReady              string // status/reason@generation, "" for none
		wantAccepted           string
		wantObservedGeneration int64
		wantLastError          any
	}{
		{"valid and running", registration{generation: 1, state: running},
			"True/Running@1", "True/Accepted@1", 1, nil},
		{"invalid edit of a running operator", registration{generation: 2, specErr: "/spec/x: bad", state: running},
			"True/Running@1", "False/InvalidSpec@2", 2, "/spec/x: bad"},
		{"invalid, nothing ever ran", registration{generation: 1, specErr: "/spec/x: bad"},
			"False/InvalidSpec@1", "False/InvalidSpec@1", 1, "/spec/x: bad"},
		{"valid, not reported yet", registration{generation: 1},
			"", "True/Accepted@1", 1, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writer := &spec.GatewayRef{Identity: "gateway-a", Lease: "ops/opgate-gateway"}
			st := tt.reg.status(nil, writer)
			conds := st["conditions"].([]metav1.Condition)
			show := func(typ string) string {
				c := meta.FindStatusCondition(conds, typ)
				if c == nil {
					return ""
				}
				return fmt.Sprintf("%s/%s@%d", c.Status, c.Reason, c.ObservedGeneration)
			}
			if got := show(spec.ConditionReady); got != tt.wantReady {
				t.Errorf("Ready = %q, want %q", got, tt.wantReady)
			}
			if got := show(spec.ConditionSpecAccepted); got != tt.wantAccepted {
				t.Errorf("SpecAccepted = %q, want %q", got, tt.wantAccepted)
			}
			if st["observedGeneration"] != tt.wantObservedGeneration {
				t.Errorf("observedGeneration = %v, want %d", st["observedGeneration"], tt.wantObservedGeneration)
			}
			if st["lastError"] != tt.wantLastError {
				t.Errorf("lastError = %v, want %v", st["lastError"], tt.wantLastError)
			}
			// The writer's name goes with a Ready written, never alone: a
			// Ready left by another gateway keeps its own writer's.
			want := map[string]any{"identity": "gateway-a", "lease": "ops/opgate-gateway"}
			if got, ok := st["gateway"]; ok != (tt.wantReady != "") || (ok && !reflect.DeepEqual(got, want)) {
				t.Errorf("gateway = %v (written: %v), want %v written with Ready %q only", got, ok, want, tt.wantReady)
			}
		})
	}
}

// A kind watched twice (as parent and as related object here, neither
// with a selector) has two informers; one's success must not hide the
// other's failure, so each reports under a name of its own, the one its
// readiness and sync messages use.
func TestInformersOfOneKindReportTheirHealthApart(t *testing.T) {
	c := relatedController(t, 0)
	c.related = append(c.related, relatedKind{watched: &watched{mapping: c.parent.mapping, role: "related[1]"}})
	c.parent.role, c.related[0].role = "watched", "related[0]"
	fake := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{c.parent.mapping.Resource: "WidgetList"})
	fake.PrependReactor("list", "widgets", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "test.opgate.dev", Resource: "widgets"}, "", errors.New("rbac"))
	})
	c.Dynamic = fake
	c.buildInformers()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.parent.informers["ns"].Run(ctx.Done())
	go c.related[1].informers["ns"].Run(ctx.Done())
	var names []string
	for _, inf := range c.informers() {
		if inf.SharedIndexInformer == c.parent.informers["ns"] || inf.SharedIndexInformer == c.related[1].informers["ns"] {
			names = append(names, inf.what)
		}
	}
	if len(names) != 2 {
		t.Fatalf("informers of the parent and the second related kind: %q, want two", names)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.health.mu.Lock()
		_, parentFails := c.health.errs[names[0]]
		_, relatedFails := c.health.errs[names[1]]
		c.health.mu.Unlock()
		if parentFails && relatedFails && names[0] != names[1] {
			return
		}
		if time.Now().After(deadline) {
			c.health.mu.Lock()
			defer c.health.mu.Unlock()
			t.Fatalf("informers %q; failures recorded %v: want one per informer, under its name", names, c.health.errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A watch that ends with EOF is resumed at once: nothing to report. A list
// or watch call that fails with EOF did not reach the API server (a load
// balancer in front of a dead one): the informer is failing. The
// reflector's report of a failed call, wrapped, changes nothing.
func TestCallFailingWithEOFIsReportedAWatchEndingWithItIsNot(t *testing.T) {
	var h watchHealth
	changes := 0
	h.onChange = func() { changes++ }
	h.observeFailure("widgets", io.EOF)
	if _, _, failing := h.failing(); failing {
		t.Fatal("a watch ended by EOF reported as failing")
	}
	h.observeCall("widgets", fmt.Errorf("Get https://api/widgets: %w", io.EOF))
	if what, _, failing := h.failing(); !failing || what != "widgets" {
		t.Fatalf("failing = %q (%v), want the list that got EOF", what, failing)
	}
	h.observeCall("widgets", apierrors.NewResourceExpired("too old resource version"))
	if _, _, failing := h.failing(); !failing {
		t.Fatal("a 410, which the reflector relists for at once, cleared the failure")
	}
	forbidden := apierrors.NewForbidden(deployments, "", errors.New("rbac"))
	h.observeCall("deployments", forbidden)
	h.observeFailure("deployments", fmt.Errorf("failed to list deployments: %w", forbidden))
	if changes != 2 {
		t.Errorf("%d changes, want 2: the reflector's report of a call's failure is no change", changes)
	}
}
