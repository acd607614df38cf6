package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/internal/poll"
)

// A gateway stopped (SIGTERM) while the API server never answered shuts
// down cleanly in both modes: without files it used to fail with "cache
// did not sync (is the CRD in crds/ installed?): context canceled", a
// shutdown reported as a missing CRD.
func TestRunStoppedWhileTheAPIServerIsUnreachableReturnsNil(t *testing.T) {
	ops, err := spec.LoadFiles("../../examples/operators/memcached.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		ops  []*spec.WebhookOperator
	}{{"WebhookOperator objects", nil}, {"files", ops}} {
		t.Run(tt.name, func(t *testing.T) {
			gw, err := New(&rest.Config{Host: "http://127.0.0.1:1"},
				Options{Operators: tt.ops, Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			done := make(chan error, 1)
			go func() { done <- gw.Run(ctx) }()
			poll.Eventually(t, 20*time.Second, "Ready to report the unreachable API server", func(context.Context) (bool, string, error) {
				err := gw.Ready()
				return err != nil && strings.Contains(err.Error(), "connection refused"), fmt.Sprint(err), nil
			})
			stop()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil after a shutdown", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after its context was canceled")
			}
		})
	}
}
