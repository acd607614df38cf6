package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/spec"
)

// RegistryFinalizer lets the gateway release its finalizers from every
// watched object before a WebhookOperator goes away.
const RegistryFinalizer = "opgate.dev/gateway"

// ReasonReleaseForbidden: a WebhookOperator being deleted keeps its
// finalizer because the gateway may not list or patch a kind the operator
// ran on, where objects may still hold the operator's finalizer.
const ReasonReleaseForbidden = "ReleaseForbidden"

// OperatorResource is the WebhookOperator resource.
var OperatorResource = schema.GroupVersionResource{Group: spec.Group, Version: spec.Version, Resource: spec.Resource}

// Registry runs the operators registered as WebhookOperator objects.
type Registry struct {
	deps    Deps
	mgr     *Manager
	applier *apply.Applier
	queue   workqueue.TypedRateLimitingInterface[string]
	lister  cache.GenericLister

	// Readiness and status: see registry_status.go.
	health  watchHealth // of the WebhookOperator informer
	synced  atomic.Bool
	mu      sync.Mutex
	regs    map[string]*registration
	failing map[string]string // why the last sync of a WebhookOperator failed, until one succeeds
	writeMu sync.Mutex
	stalled stalledKeys // operators whose sync failed to reach the API server
}

// registryRateLimiter backs a failing WebhookOperator off as client-go's
// controllers do, but to a minute at most instead of 1000 s: what fails it
// (RBAC refusing the gateway's finalizer, a status write) is usually
// fixed by someone else without an event the registry sees, and until it
// retries the operator does not run and /readyz says so. The registry
// holds few keys, so the cap costs nothing.
func registryRateLimiter() workqueue.TypedRateLimiter[string] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[string](5*time.Millisecond, time.Minute)
}

// NewRegistry returns a Registry whose manager reports into each
// WebhookOperator's status.
func NewRegistry(deps Deps) (*Registry, error) {
	r := &Registry{
		deps:    deps,
		applier: deps.applier(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(registryRateLimiter(),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "webhookoperators"}),
		regs:    map[string]*registration{},
		failing: map[string]string{},
	}
	r.health.onChange = r.onHealthChange
	mgr, err := NewManager(deps, r.reportStatus, operatorObjectRecord{dyn: deps.Dynamic})
	if err != nil {
		return nil, err
	}
	r.mgr = mgr
	return r, nil
}

// Run watches WebhookOperators until ctx is done.
func (r *Registry) Run(ctx context.Context) error {
	defer shutDownDrained(r.queue)
	inf := newTrackedInformer(r.deps, OperatorResource, metav1.NamespaceAll, selection{},
		describeInformer(OperatorResource, metav1.NamespaceAll, selection{}), cache.Indexers{}, &r.health)
	r.lister = cache.NewGenericLister(inf.GetIndexer(), OperatorResource.GroupResource())
	enqueue := func(o any) {
		if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			r.queue.Add(k)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) }, DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	go inf.Run(ctx.Done())
	// Ready says why while this waits (the CRD missing, RBAC, the API
	// server unreachable); the reflector retries with backoff until the
	// list works. Only ctx ends the wait: a shutdown, as in file mode.
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil
	}
	r.synced.Store(true)
	go func() {
		<-ctx.Done()
		r.queue.ShutDown()
	}()
	for {
		name, quit := r.queue.Get()
		if quit {
			break
		}
		began := r.stalled.epoch()
		if err := r.sync(ctx, name); err != nil && ctx.Err() == nil {
			r.deps.Logger.Error("webhookoperator sync failed; retrying", "operator", name, "error", err)
			r.syncFailed(name, err)
			r.stalled.failed(name, began, err, r.queue)
		} else {
			r.syncFailed(name, nil)
			r.stalled.drop(name)
			r.queue.Forget(name)
		}
		r.queue.Done(name)
	}
	r.mgr.Wait()
	if !errors.Is(context.Cause(ctx), ErrLeadershipLost) {
		r.markStopped(ctx)
	}
	return nil
}

func (r *Registry) sync(ctx context.Context, name string) error {
	o, err := r.lister.Get(name)
	if apierrors.IsNotFound(err) {
		// Gone without unregister (its finalizer removed by hand): still
		// let go of what the operator ran on. Kinds the gateway may not
		// list or patch were logged; their record went with the object.
		r.forget(name)
		if err := r.mgr.Release(ctx, name); !errors.As(err, new(*ReleaseForbiddenError)) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	obj := o.(*unstructured.Unstructured).DeepCopy()
	if obj.GetDeletionTimestamp() != nil {
		return r.unregister(ctx, obj)
	}
	held, err := r.applier.AddFinalizer(ctx, obj, RegistryFinalizer)
	if err != nil {
		return err
	}
	if held == nil {
		// Deleted (or deleted and created anew) since the cache saw it:
		// its delete event, or the new object's, brings the next sync.
		return nil
	}
	op, err := spec.DecodeObject(obj.Object)
	if err != nil {
		// Never half-applied: an operator already running keeps its last
		// valid spec (Ready); SpecAccepted=False says what is wrong.
		if r.judge(name, obj.GetGeneration(), err.Error()) {
			r.deps.Recorder.Event(obj, "Warning", spec.ReasonInvalidSpec, truncate(err.Error(), 1024))
		}
		r.writeStatus(ctx, name)
		return nil
	}
	r.judge(name, obj.GetGeneration(), "")
	op.Generation = obj.GetGeneration()
	r.mgr.Apply(ctx, op)
	r.writeStatus(ctx, name)
	return nil
}

// unregister stops the operator and releases its finalizer and state
// annotation from every object of every kind it ran on, then lets the
// WebhookOperator go. The stored spec may be invalid (an invalid edit,
// stricter validation after an upgrade): the kinds and namespaces come
// from the spec the manager last ran, the kinds recorded on the object,
// and the stored spec's watch, read without validating the rest. While a
// kind is forbidden (RBAC), the WebhookOperator keeps its finalizer and
// says why: removing it would leave objects held for ever.
func (r *Registry) unregister(ctx context.Context, obj *unstructured.Unstructured) error {
	var stored []spec.WatchSpec
	apiVersion, _, _ := unstructured.NestedString(obj.Object, "spec", "watch", "apiVersion")
	kind, _, _ := unstructured.NestedString(obj.Object, "spec", "watch", "kind")
	namespaces, _, _ := unstructured.NestedStringSlice(obj.Object, "spec", "watch", "namespaces")
	if _, err := schema.ParseGroupVersion(apiVersion); err == nil && kind != "" {
		stored = append(stored, spec.WatchSpec{APIVersion: apiVersion, Kind: kind, Namespaces: namespaces})
	}
	err := r.mgr.Release(ctx, obj.GetName(), stored...)
	if forbidden := (*ReleaseForbiddenError)(nil); errors.As(err, &forbidden) {
		r.releaseForbidden(ctx, obj, forbidden)
	}
	if err != nil {
		return fmt.Errorf("release the objects of WebhookOperator %s: %w", obj.GetName(), err)
	}
	r.forget(obj.GetName())
	_, err = r.applier.RemoveFinalizer(ctx, obj, RegistryFinalizer)
	return err
}
