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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/record"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/metrics"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/watchjson"
)

// Options configure a Gateway.
type Options struct {
	// Operators, when non-empty, are run as given (file mode) and no
	// WebhookOperator objects are watched.
	Operators []*spec.WebhookOperator
	// OperatorRecord (file mode, optional) is a ConfigMap of this gateway
	// alone where it records the operators it runs and the kinds they
	// watch, so that a restart without an operator lets go of its objects.
	OperatorRecord   types.NamespacedName
	Workers          int // per operator
	MaxResponseBytes int64
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
	Clock            func() time.Time
	// ReconcileTimeout bounds the work of one pass over one object;
	// engine.DefaultReconcileTimeout when zero.
	ReconcileTimeout time.Duration
	// SecretNamespace is the only namespace handler Secrets are read
	// from (engine.Deps.SecretNamespace); empty allows any.
	SecretNamespace string
}

// Gateway is a wired, not yet running gateway.
type Gateway struct {
	deps        engine.Deps
	opts        Options
	broadcaster record.EventBroadcaster
	running     atomic.Bool
	standby     atomic.Pointer[leaseWatch] // while RunElected runs: a replica that does not lead is a standby

	mu       sync.Mutex
	notReady map[string]string // file mode: operator → why it is not running
	registry *engine.Registry  // registry mode, once running
	files    *engine.Manager   // file mode, once running
}

// New wires a gateway against the API server of cfg.
func New(cfg *rest.Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registerer == nil {
		return nil, errors.New("runner: a prometheus Registerer is required")
	}
	// The dynamic client's own REST client, so that the gateway's writes
	// that read only metadata back share its rate limiter and connection;
	// the informers' on a connection of their own (clients.go).
	rc, wrc, err := dynamicREST(cfg, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	dyn := dynamic.New(rc)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("metadata client: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	// One cache for the mapper and the engine's questions about
	// subresources, invalidated by the mapper's Reset.
	cached := memory.NewMemCacheClient(disco)
	caller, err := call.New(call.Config{MaxResponseBytes: opts.MaxResponseBytes, Logger: opts.Logger, Clock: opts.Clock})
	if err != nil {
		return nil, err
	}
	m, err := metrics.New(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(warningSink{EventSink: &typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")}, log: opts.Logger})
	g := &Gateway{
		opts:        opts,
		broadcaster: broadcaster,
		deps: engine.Deps{
			Dynamic:   dyn,
			REST:      rc,
			WatchREST: wrc,
			// The informers drop managedFields before caching (engine's
			// transform): cut it before decoding. One try: the informers
			// retry a lost connection themselves, and report it
			// (gateway/engine/reach.go).
			Watcher:   watchjson.New(wrc, watchjson.DropManagedFields(), watchjson.Attempts(1)),
			Metadata:  meta,
			Kube:      kube,
			Mapper:    newMissCheckingMapper(restmapper.NewDeferredDiscoveryRESTMapper(cached), disco, missRecheck, time.Now),
			Discovery: cached,
			Caller:    caller,
			Recorder:  broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "opgate"}),
			Metrics:   m,
			Logger:    opts.Logger,
			Clock:     opts.Clock,
			Workers:   opts.Workers,

			// Its own source, so its own budget in the broadcaster's spam filter.
			HandlerRecorder:  broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "opgate-handler"}),
			ReconcileTimeout: opts.ReconcileTimeout,
			SecretNamespace:  opts.SecretNamespace,
		},
	}
	if err := opts.Registerer.Register(newObjectsCollector(g)); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return g, nil
}

// Run runs until ctx is done, without leader election: it names itself
// on the WebhookOperators it writes Ready on by an identity of its own
// (NewIdentity), no Lease.
func (g *Gateway) Run(ctx context.Context) error {
	id, err := NewIdentity()
	if err != nil {
		return err
	}
	return g.run(ctx, spec.GatewayRef{Identity: id})
}

// run runs as writer until ctx is done.
func (g *Gateway) run(ctx context.Context, writer spec.GatewayRef) error {
	defer g.broadcaster.Shutdown()
	g.running.Store(true)
	defer g.running.Store(false)
	if len(g.opts.Operators) > 0 {
		return g.runFiles(ctx)
	}
	deps := g.deps
	deps.Gateway = &writer
	reg, err := engine.NewRegistry(deps)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.registry = reg
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.registry = nil
		g.mu.Unlock()
	}()
	return reg.Run(ctx)
}

// runFiles runs the operators of the files until ctx is done.
func (g *Gateway) runFiles(ctx context.Context) error {
	g.mu.Lock()
	g.notReady = map[string]string{}
	for _, op := range g.opts.Operators {
		g.notReady[op.Name] = "starting"
	}
	g.mu.Unlock()
	var record engine.KindRecord
	cmRecord := engine.ConfigMapRecord{Kube: g.deps.Kube, Ref: g.opts.OperatorRecord}
	if cmRecord.Ref.Name != "" {
		record = cmRecord
	}
	mgr, err := engine.NewManager(g.deps, g.reportFileOperator, record)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.files = mgr
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.files = nil
		g.mu.Unlock()
	}()
	names := make([]string, 0, len(g.opts.Operators))
	for _, op := range g.opts.Operators {
		mgr.Apply(ctx, op)
		names = append(names, op.Name)
	}
	if record != nil {
		g.releaseDropped(ctx, mgr, cmRecord, names)
	}
	<-ctx.Done()
	mgr.Wait()
	return nil
}

// reportFileOperator keeps what /readyz says about the file's operators.
func (g *Gateway) reportFileOperator(name string, st engine.OperatorState) {
	g.mu.Lock()
	if st.Ready {
		delete(g.notReady, name)
	} else {
		g.notReady[name] = st.Reason + ": " + st.Message
	}
	g.mu.Unlock()
}

// releaseDropped lets go, in the background, of the operators the record
// lists and the files no longer do. An unreadable record is logged; the
// next start tries again.
func (g *Gateway) releaseDropped(ctx context.Context, mgr *engine.Manager, record engine.ConfigMapRecord, running []string) {
	recorded, err := record.Operators(ctx)
	if err != nil {
		g.opts.Logger.Error("cannot read the operator record; operators dropped from the files keep their finalizers until the next start", "error", err)
		return
	}
	mgr.ReleaseUnlisted(ctx, recorded, running)
}

// Ready reports whether the gateway does its work (docs/operations.md,
// "Health"). In file mode every operator of the files must run, caches
// synced: there is no WebhookOperator status to say otherwise. In registry
// mode the WebhookOperator CRD must be installed and every operator see its
// objects; a registration's own faults stay on its status, so that one
// broken registration does not take the gateway out of service. A replica
// waiting for leadership is ready while another replica renews the Lease: a
// healthy standby.
func (g *Gateway) Ready() error {
	if !g.running.Load() {
		if w := g.standby.Load(); w != nil {
			return w.ready()
		}
		return errors.New("gateway not running")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.opts.Operators) == 0 {
		if g.registry == nil {
			return errors.New("gateway starting")
		}
		return g.registry.Ready()
	}
	if g.notReady == nil {
		return errors.New("gateway starting")
	}
	if len(g.notReady) == 0 {
		return nil
	}
	names := make([]string, 0, len(g.notReady))
	for n := range g.notReady {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "operator %s not running (%s); ", n, g.notReady[n])
	}
	return errors.New(strings.TrimSuffix(b.String(), "; "))
}

// View is what the operators this gateway runs see in their informer
// caches (engine.Manager.View); empty while the gateway is not running or
// is a standby.
func (g *Gateway) View() []engine.OperatorView {
	g.mu.Lock()
	reg, files := g.registry, g.files
	g.mu.Unlock()
	switch {
	case reg != nil:
		return reg.View()
	case files != nil:
		return files.View()
	}
	return nil
}
