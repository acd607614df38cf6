package integration

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

func TestReadyzNamesFileOperatorsThatCannotStart(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	good := operatorFor(t, "good", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	bad := operatorFor(t, "nosecret", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Handler.Auth = &spec.AuthSpec{HMACSecretRef: &spec.SecretKeyRef{Namespace: ns, Name: "missing", Key: "secret"}}
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	})
	for _, tt := range []struct {
		name      string
		ops       []*spec.WebhookOperator
		wantReady bool
	}{
		{"every operator running", []*spec.WebhookOperator{good}, true},
		{"one operator's secret missing", []*spec.WebhookOperator{good, bad}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			gw, err := runner.New(cfg, runner.Options{Operators: tt.ops, Registerer: prometheus.NewRegistry(),
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- gw.Run(ctx) }()
			defer func() { cancel(); <-done }()
			eventually(t, 20*time.Second, func() error {
				err := gw.Ready()
				switch {
				case tt.wantReady && err != nil:
					return fmt.Errorf("not ready: %v", err)
				case !tt.wantReady && (err == nil || !strings.Contains(err.Error(), "operator nosecret not running (SecretUnreadable")):
					return fmt.Errorf("Ready() = %v, want an error naming operator nosecret and SecretUnreadable", err)
				}
				return nil
			})
		})
	}
}
