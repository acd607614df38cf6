// Package runner wires the gateway together from a rest.Config: clients,
// REST mapper, callback client, event recorder, metrics, and either the
// operators given as files or the WebhookOperator registry. The CLI and the
// integration tests start the gateway through it, so both run the same code.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/record"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/metrics"
	"github.com/opgate/opgate/gateway/spec"
)

// Options configure a Gateway.
type Options struct {
	// Operators, when non-empty, are run as given (file mode) and no
	// WebhookOperator objects are watched.
	Operators        []*spec.WebhookOperator
	Workers          int // per operator
	MaxResponseBytes int64
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
	Clock            func() time.Time
}

// Gateway is a wired, not yet running gateway.
type Gateway struct {
	deps        engine.Deps
	opts        Options
	broadcaster record.EventBroadcaster
	running     atomic.Bool
}

// New wires a gateway against the API server of cfg.
func New(cfg *rest.Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registerer == nil {
		return nil, errors.New("runner: a prometheus Registerer is required")
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	caller, err := call.New(call.Config{MaxResponseBytes: opts.MaxResponseBytes, Logger: opts.Logger, Clock: opts.Clock})
	if err != nil {
		return nil, err
	}
	m, err := metrics.New(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	g := &Gateway{
		opts:        opts,
		broadcaster: broadcaster,
		deps: engine.Deps{
			Dynamic:  dyn,
			Kube:     kube,
			Mapper:   restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)),
			Caller:   caller,
			Recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "opgate"}),
			Metrics:  m,
			Logger:   opts.Logger,
			Clock:    opts.Clock,
			Workers:  opts.Workers,
		},
	}
	return g, nil
}

// Run runs until ctx is done.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.broadcaster.Shutdown()
	g.running.Store(true)
	defer g.running.Store(false)
	if len(g.opts.Operators) > 0 {
		mgr, err := engine.NewManager(g.deps, func(name string, st engine.OperatorState) {
			if !st.Ready {
				g.opts.Logger.Warn("operator not ready", "operator", name, "reason", st.Reason, "message", st.Message)
			}
		})
		if err != nil {
			return err
		}
		for _, op := range g.opts.Operators {
			mgr.Apply(ctx, op)
		}
		<-ctx.Done()
		mgr.Wait()
		return nil
	}
	reg, err := engine.NewRegistry(g.deps)
	if err != nil {
		return err
	}
	return reg.Run(ctx)
}

// Ready reports whether the gateway is running.
func (g *Gateway) Ready() error {
	if !g.running.Load() {
		return errors.New("gateway not running (waiting for leadership?)")
	}
	return nil
}
