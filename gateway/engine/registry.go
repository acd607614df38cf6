package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

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
	writeMu sync.Mutex
}

// NewRegistry returns a Registry whose manager reports into each
// WebhookOperator's status.
func NewRegistry(deps Deps) (*Registry, error) {
	r := &Registry{
		deps:    deps,
		applier: apply.New(deps.Dynamic, deps.Mapper),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "webhookoperators"}),
		regs: map[string]*registration{},
	}
	r.health.onChange = r.logWatchHealth
	mgr, err := NewManager(deps, r.reportStatus)
	if err != nil {
		return nil, err
	}
	r.mgr = mgr
	return r, nil
}

// Run watches WebhookOperators until ctx is done.
func (r *Registry) Run(ctx context.Context) error {
	defer r.queue.ShutDown()
	inf := newTrackedInformer(r.deps.Dynamic, OperatorResource, metav1.NamespaceAll, nil, cache.Indexers{}, &r.health)
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
	// Ready says why while this waits (the CRD missing, RBAC); the
	// reflector retries with backoff until the CRD is installed.
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("watch WebhookOperators: cache did not sync (is the CRD in crds/ installed?): %w", ctx.Err())
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
		if err := r.sync(ctx, name); err != nil {
			r.deps.Logger.Error("webhookoperator sync failed; retrying", "operator", name, "error", err)
			r.queue.AddRateLimited(name)
		} else {
			r.queue.Forget(name)
		}
		r.queue.Done(name)
	}
	r.mgr.Wait()
	return nil
}

func (r *Registry) sync(ctx context.Context, name string) error {
	o, err := r.lister.Get(name)
	if apierrors.IsNotFound(err) {
		r.mgr.Remove(name)
		r.forget(name)
		return nil
	}
	if err != nil {
		return err
	}
	obj := o.(*unstructured.Unstructured).DeepCopy()
	if obj.GetDeletionTimestamp() != nil {
		return r.unregister(ctx, obj)
	}
	if _, err := r.applier.AddFinalizer(ctx, obj, RegistryFinalizer); err != nil {
		return err
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

// unregister stops the operator and releases its finalizer from every
// object it watched, then lets the WebhookOperator go.
func (r *Registry) unregister(ctx context.Context, obj *unstructured.Unstructured) error {
	name := obj.GetName()
	r.mgr.Remove(name)
	if op, err := spec.DecodeObject(obj.Object); err == nil {
		if err := r.releaseAll(ctx, op); err != nil {
			return err
		}
	}
	_, err := r.applier.RemoveFinalizer(ctx, obj, RegistryFinalizer)
	return err
}

func (r *Registry) releaseAll(ctx context.Context, op *spec.WebhookOperator) error {
	m, err := apply.Mapping(r.deps.Mapper, op.Spec.Watch.APIVersion, op.Spec.Watch.Kind)
	if err != nil {
		return nil // the kind is gone, and its objects with it
	}
	list, err := r.deps.Dynamic.Resource(m.Resource).Namespace(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list %s to release finalizers: %w", m.Resource, err)
	}
	fin := op.Finalizer()
	for i := range list.Items {
		item := &list.Items[i]
		if _, err := r.applier.RemoveFinalizer(ctx, item, fin); err != nil {
			return err
		}
	}
	return nil
}
