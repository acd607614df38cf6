// Package engine runs operators: per operator it watches the parent kind,
// its children and related objects, queues object keys, and for each key
// decides, calls, checks and applies — the whole loop of docs/architecture.md.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/metrics"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/watchjson"
)

// Deps are what every operator controller shares.
type Deps struct {
	Dynamic dynamic.Interface
	// REST, when set, is the REST client Dynamic was made from
	// (dynamic.New(REST)): writes whose answer the engine needs only in
	// part ask it for the metadata alone (apply.Applier.WithREST).
	REST rest.Interface
	// WatchREST, when set, is a REST client like REST on a connection of
	// its own, for the child informers' lists and watches; nil: REST.
	WatchREST rest.Interface
	// Watcher, when set, makes the other informers' lists and watches
	// (made from WatchREST or REST); nil: the dynamic client's.
	Watcher  *watchjson.Watcher
	Metadata metadata.Interface // lists where only finalizers and annotations matter
	Kube     kubernetes.Interface
	// Mapper resolves kinds. The gateway's (runner's) asks the API server
	// again about a kind it misses, so an operator waiting for its CRD
	// starts, and a CRD created again is found, without a restart.
	Mapper meta.ResettableRESTMapper
	// Discovery, when set, is the discovery client behind Mapper (its
	// cache, reset with it); nil: Kube's. It says which subresources a
	// built-in kind has (see statusless).
	Discovery  discovery.DiscoveryInterface
	Caller     *call.Client
	Recorder   record.EventRecorder // the gateway's own Events
	Metrics    *metrics.Metrics
	Logger     *slog.Logger
	Clock      func() time.Time
	Workers    int // per operator
	EssenceCap int
	// HandlerRecorder records the Events handlers answer, under a source
	// of its own: client-go lets a burst of 25 Events per source, object
	// and type through, then one per 5 minutes, and a handler's Events
	// must not use up the gateway's (its failures). nil: Recorder.
	HandlerRecorder record.EventRecorder
	// ReconcileTimeout bounds the work of one pass over one object
	// (DefaultReconcileTimeout when zero); see passBudget.
	ReconcileTimeout time.Duration
	// SecretPollInterval is how often a handler Secret is re-read when
	// RBAC forbids watching it; DefaultSecretPollInterval when zero.
	SecretPollInterval time.Duration
	// SecretNamespace is the one namespace handler Secrets may be read
	// from; a WebhookOperator referencing a Secret elsewhere is refused
	// (see secretguard.go). Empty allows every namespace: `gateway run`
	// always sets it.
	SecretNamespace string
	// ChildOwners finds children of the gateway's other operators; the
	// Manager (the Registry's too) sets it to its running controllers
	// when nil. nil: only the operator's own children are seen.
	ChildOwners ChildOwners
	// ConditionsClaims says which other operator keeps the status
	// conditions of an operator's kind; the Manager sets it to its
	// operators' when nil. nil: no other operator is considered.
	ConditionsClaims ConditionsClaims
	// Gateway names this gateway on each WebhookOperator's status, with
	// the Ready it writes (status.gateway); nil: not named.
	Gateway *spec.GatewayRef
}

// DefaultReconcileTimeout is Deps.ReconcileTimeout when it is not set.
const DefaultReconcileTimeout = 5 * time.Minute

// writtenMappings are the kinds the controller writes to.
func (c *Controller) writtenMappings() []*meta.RESTMapping {
	ms := []*meta.RESTMapping{c.parent.mapping}
	for _, ch := range c.children {
		ms = append(ms, ch.mapping)
	}
	return ms
}

func (d *Deps) applier() *apply.Applier {
	return apply.New(d.Dynamic, d.Mapper).WithREST(d.REST)
}

func (d *Deps) validate() error {
	switch {
	case d.Dynamic == nil, d.Metadata == nil, d.Kube == nil, d.Mapper == nil, d.Caller == nil, d.Recorder == nil, d.Metrics == nil:
		return errors.New("engine: Dynamic, Metadata, Kube, Mapper, Caller, Recorder and Metrics are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.HandlerRecorder == nil {
		d.HandlerRecorder = d.Recorder
	}
	if d.Discovery == nil {
		d.Discovery = d.Kube.Discovery()
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Workers <= 0 {
		d.Workers = 64
	}
	if d.EssenceCap <= 0 {
		d.EssenceCap = 64 << 10
	}
	if d.ReconcileTimeout <= 0 {
		d.ReconcileTimeout = DefaultReconcileTimeout
	}
	if d.SecretPollInterval <= 0 {
		d.SecretPollInterval = DefaultSecretPollInterval
	}
	return nil
}

// watched is one informed kind.
type watched struct {
	mapping   *meta.RESTMapping
	role      string                               // "watched", "children[0]", "related[1]": as the spec names it
	selection selection                            // of every informer
	informers map[string]cache.SharedIndexInformer // by namespace; "" = all
	handled   map[string]*handledRV                // children's only, by namespace as informers
}

// describe names w's informer in namespace ns for health and messages.
func (w *watched) describe(ns string) string {
	return describeInformer(w.mapping.Resource, ns, w.selection) + " (" + w.role + ")"
}

func (w *watched) list(namespace string, sel labels.Selector) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for ns, inf := range w.informers {
		if ns != "" && namespace != "" && ns != namespace {
			continue
		}
		add := func(o any) {
			if u, ok := o.(*unstructured.Unstructured); ok {
				out = append(out, u)
			}
		}
		var err error
		if namespace == metav1.NamespaceAll {
			err = cache.ListAll(inf.GetIndexer(), sel, add)
		} else {
			err = cache.ListAllByNamespace(inf.GetIndexer(), namespace, sel, add)
		}
		if err != nil {
			utilruntime.HandleError(err)
		}
	}
	return out
}

func (w *watched) get(key string) (*unstructured.Unstructured, bool) {
	for _, inf := range w.informers {
		if o, ok, err := inf.GetIndexer().GetByKey(key); err == nil && ok {
			if u, ok := o.(*unstructured.Unstructured); ok {
				return u, true
			}
		}
	}
	return nil, false
}

// Controller runs one WebhookOperator.
type Controller struct {
	Deps
	// parentEvents counts the parent informers' events; Stats counts
	// again only when it moved (statsCache).
	parentEvents atomic.Uint64
	statsCache   statsCache
	op           *spec.WebhookOperator
	log          *slog.Logger
	applier      *apply.Applier
	parent       *watched
	children     []childKind
	related      []relatedKind
	status       *statusSchema // nil for a built-in parent kind
	statusless   bool          // a built-in parent kind without the status subresource: no status at all
	endpoints    *credentials  // kept current as their Secrets change
	problems     problems
	queue        workqueue.TypedRateLimitingInterface[string]
	inflight     chan struct{}

	// What Health reads: see health.go.
	crdInformer cache.SharedIndexInformer // the parent's CRD; nil when status is nil
	// scopeInformers watch the CRDs of the custom child and related kinds
	// (watchKindScopes).
	scopeInformers []namedInformer
	rescope        chan struct{} // see rescoped
	health         watchHealth
	running        atomic.Bool   // caches synced and workers started
	changed        chan struct{} // signalled when Health may have changed
	stalled        stalledKeys   // keys whose pass failed to reach the API server

	templates templates // parsed related selector templates
	// missing are the child and related kinds not served when the
	// controller was built (missingkinds.go): no informer, no mapping.
	missing        []missingKind
	missingRecheck time.Duration // how often awaitMissingKinds asks

	mu       sync.Mutex
	memory   map[string]*objectMemory
	vanished map[string]map[types.UID]*vanishedObject // see vanished.go
	gone     map[string]bool                          // keys with nothing left to let go of: see noteGone
}

type childKind struct {
	spec spec.ChildSpec
	*watched
}

type relatedKind struct {
	spec spec.RelatedSpec
	*watched
}

// NewController resolves the operator's kinds and handler endpoints. It
// fails with a failure.Error of reason KindNotFound while the watched kind
// is missing, or a child or related kind is served only at other versions
// than declared; a child or related kind served at no version is run
// without (missingkinds.go).
func NewController(ctx context.Context, deps Deps, op *spec.WebhookOperator) (*Controller, error) {
	if err := deps.validate(); err != nil {
		return nil, err
	}
	// Before any watch starts: a refused operator reads nothing.
	if err := checkSecretNamespaces(op, deps.SecretNamespace); err != nil {
		return nil, err
	}
	c := &Controller{
		Deps:    deps,
		op:      op,
		log:     deps.Logger.With("operator", op.Name),
		applier: deps.applier(),
		memory:  map[string]*objectMemory{},
		changed: make(chan struct{}, 1),
		rescope: make(chan struct{}, 1),
		// As often as the Manager retried a controller it could not build.
		missingRecheck: kindRetry,
	}
	c.health.onChange = c.onHealthChange
	pm, err := apply.Mapping(deps.Mapper, op.Spec.Watch.APIVersion, op.Spec.Watch.Kind)
	if err != nil {
		return nil, err
	}
	if checkWatchScope(op, pm) != nil {
		if pm, err = remapRescoped(ctx, deps, op, pm); err != nil {
			return nil, err
		}
		if err := checkWatchScope(op, pm); err != nil {
			return nil, err
		}
	}
	c.parent = &watched{mapping: pm, role: "watched"}
	for i, ch := range op.Spec.Children {
		role := fmt.Sprintf("children[%d]", i)
		m, missing, err := mapKind(deps.Mapper, role, ch.APIVersion, ch.Kind)
		if missing != nil {
			c.missing = append(c.missing, *missing)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("child kind: %w", err)
		}
		c.children = append(c.children, childKind{spec: ch, watched: &watched{mapping: m, role: role}})
	}
	c.applier = c.applier.Pinned(c.writtenMappings()...)
	for i, rel := range op.Spec.Related {
		role := fmt.Sprintf("related[%d]", i)
		m, missing, err := mapKind(deps.Mapper, role, rel.APIVersion, rel.Kind)
		if missing != nil {
			c.missing = append(c.missing, *missing)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("related kind: %w", err)
		}
		c.related = append(c.related, relatedKind{spec: rel, watched: &watched{mapping: m, role: role}})
	}
	if err := c.checkSecretKinds(deps.SecretNamespace); err != nil {
		return nil, err
	}
	c.buildInformers()
	if c.status, err = c.loadStatusChecker(ctx); err != nil {
		return nil, err
	}
	if c.status == nil {
		if c.statusless, err = c.lacksStatusSubresource(); err != nil {
			return nil, err
		}
	}
	c.watchCRD()
	c.watchKindScopes()
	if c.endpoints, err = newCredentials(ctx, c); err != nil {
		return nil, err
	}
	maxInFlight := 64
	if op.Spec.Concurrency != nil && op.Spec.Concurrency.MaxInFlight > 0 {
		maxInFlight = op.Spec.Concurrency.MaxInFlight
	}
	c.inflight = make(chan struct{}, maxInFlight)
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: c.op.Name},
	)
	warnPlainHTTP(c.log, op)
	return c, nil
}

// Run starts the informers and workers and blocks until ctx is done, or
// until a CRD of its kinds is created again with the other scope, or a
// child or related kind it runs without is served: then it returns
// errKindRescoped, and the controller is to be built again.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-c.rescope:
			cancel(errKindRescoped)
		case <-ctx.Done():
		}
	}()
	// Drained too: stopped before its caches synced, it never started the
	// workers that would have taken what its informers queued.
	defer shutDownDrained(c.queue)
	defer c.Metrics.Stopped(c.op.Name) // its counters go only with the operator (Manager.Remove)
	credsDone := make(chan struct{})
	go func() {
		defer close(credsDone)
		c.endpoints.watch(ctx)
	}()
	defer func() { <-credsDone }()

	for _, inf := range c.informers() {
		go inf.Run(ctx.Done())
	}
	go c.awaitMissingKinds(ctx)
	// Health says why while this waits: the reflectors retry failing
	// lists with backoff and tell c.health each outcome.
	if !cache.WaitForCacheSync(ctx.Done(), c.allSynced) {
		if err := context.Cause(ctx); errors.Is(err, errKindRescoped) {
			return err
		}
		return fmt.Errorf("operator %s: informer caches did not sync: %w", c.op.Name, ctx.Err())
	}

	var wg sync.WaitGroup
	for range c.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.processNextWorkItem(ctx) {
			}
		}()
	}
	c.running.Store(true)
	c.notifyChanged()
	c.log.Info("operator started", "watch", c.op.Spec.Watch.APIVersion+"/"+c.op.Spec.Watch.Kind, "workers", c.Workers, "maxInFlight", cap(c.inflight))
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	if err := context.Cause(ctx); errors.Is(err, errKindRescoped) {
		return err
	}
	return nil
}

// checkWatchScope refuses, permanently, spec.watch.namespaces on a
// cluster-scoped kind: its objects are in no namespace, so an informer per
// namespace is answered 404 for ever, which would read as KindNotFound for
// a kind that is served. Only the RESTMapper knows the scope, so the spec
// alone cannot be refused for it.
func checkWatchScope(op *spec.WebhookOperator, m *meta.RESTMapping) error {
	w := op.Spec.Watch
	if len(w.Namespaces) == 0 || !clusterScoped(m) {
		return nil
	}
	return failure.Permanentf(spec.ReasonNamespacesOnClusterScopedKind,
		"spec.watch.namespaces %v cannot apply: %s %s (%s) is cluster-scoped, its objects are in no namespace; remove spec.watch.namespaces to watch every %s (spec.watch.labelSelector narrows them); the operator is not started and nothing is sent to its handler",
		w.Namespaces, w.APIVersion, w.Kind, m.Resource.GroupResource(), w.Kind)
}

// remapRescoped maps the watched kind afresh when its CRD gives it another
// scope than m, the mapping it is refused for: the mapper keeps a scope
// until it is reset, and an operator refused for a kind whose CRD came
// back namespaced would be refused for ever. Without the CRD (a built-in
// kind, or unreadable) m stands.
func remapRescoped(ctx context.Context, deps Deps, op *spec.WebhookOperator, m *meta.RESTMapping) (*meta.RESTMapping, error) {
	if scheme.Scheme.Recognizes(m.GroupVersionKind) {
		return m, nil
	}
	crd, err := deps.Dynamic.Resource(crdResource).Get(ctx, crdNameOf(m), metav1.GetOptions{})
	if err != nil || !scopeDiffers(crd, m) {
		return m, nil
	}
	deps.Mapper.Reset()
	return apply.Mapping(deps.Mapper, op.Spec.Watch.APIVersion, op.Spec.Watch.Kind)
}

func (c *Controller) namespaces() []string {
	if len(c.op.Spec.Watch.Namespaces) == 0 {
		return []string{metav1.NamespaceAll}
	}
	return c.op.Spec.Watch.Namespaces
}

func (c *Controller) allWatched() []*watched {
	out := []*watched{c.parent}
	for _, ch := range c.children {
		out = append(out, ch.watched)
	}
	for _, rel := range c.related {
		out = append(out, rel.watched)
	}
	return out
}

// buildInformers creates (without starting) the informers of the parent,
// child and related kinds; Run starts them.
func (c *Controller) buildInformers() {
	parentSel := ""
	if ls := c.op.Spec.Watch.LabelSelector; ls != nil {
		if s, err := metav1.LabelSelectorAsSelector(ls); err == nil {
			parentSel = s.String()
		}
	}
	ownLabel := check.OperatorLabel + "=" + c.op.Name
	start := func(w *watched, selector string, handler cache.ResourceEventHandler, namespaces []string, extra cache.Indexers) {
		w.informers = map[string]cache.SharedIndexInformer{}
		w.selection = selection{labels: selector}
		for _, ns := range namespaces {
			indexers := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
			maps.Copy(indexers, extra)
			inf := c.informerFor(w, ns, indexers)
			handler := handler
			if w.handled != nil {
				seen := &handledRV{}
				w.handled[ns] = seen
				handler = seen.noting(handler)
			}
			if _, err := inf.AddEventHandler(handler); err != nil {
				utilruntime.HandleError(err)
			}
			w.informers[ns] = inf
		}
	}
	start(c.parent, parentSel, c.parentHandler(), c.namespaces(), cache.Indexers{uidIndex: indexByUID, relatedIndex: c.indexByRelated, statsIndex: c.indexForStats})
	for _, ch := range c.children {
		ns := c.namespaces()
		// Children outside the watched namespaces (cross-namespace ones,
		// cluster-scoped ones) are seen wherever they are.
		if ch.spec.AllowCrossNamespace || clusterScoped(ch.mapping) {
			ns = []string{metav1.NamespaceAll}
		}
		ch.handled = map[string]*handledRV{} // childCacheBehind reads them
		start(ch.watched, ownLabel, cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueOwner,
			UpdateFunc: c.enqueueOwners,
			DeleteFunc: c.enqueueOwner,
		}, ns, cache.Indexers{ownerIndex: indexByOwner})
	}
	for _, rel := range c.related {
		ns := c.namespaces()
		// A cluster-scoped kind cannot be listed in a namespace.
		if clusterScoped(rel.mapping) {
			ns = []string{metav1.NamespaceAll}
		}
		start(rel.watched, "", cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueRelatedParents,
			UpdateFunc: c.enqueueRelatedChange,
			DeleteFunc: c.enqueueRelatedParents,
		}, ns, nil)
	}
}

// parentHandler handles the parent informers' events: each one queues its
// object and tells Stats that the cache changed.
func (c *Controller) parentHandler() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			c.parentEvents.Add(1)
			c.noteOrphanDelete(obj)
			c.enqueueObject(obj)
		},
		UpdateFunc: func(_, obj any) {
			c.parentEvents.Add(1)
			c.noteOrphanDelete(obj)
			c.enqueueObject(obj)
		},
		DeleteFunc: func(obj any) {
			c.parentEvents.Add(1)
			c.onParentDeleted(obj)
		},
	}
}

func (c *Controller) enqueueObject(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// asUnstructured unwraps an informer event's object, tombstones included.
func asUnstructured(obj any) (*unstructured.Unstructured, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	return u, ok
}

// shutDownDrained shuts q down and takes out what it still holds. Items
// left in a queue count in workqueue_depth{name} for ever, and the series
// is shared by name with the queue that replaces it (the operator
// restarted, the registry after a leader takeover).
func shutDownDrained[T comparable](q workqueue.TypedInterface[T]) {
	q.ShutDown()
	for {
		item, quit := q.Get()
		if quit {
			return
		}
		q.Done(item)
	}
}
