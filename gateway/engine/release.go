package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// watchedKind is the group and kind an operator watches.
func watchedKind(w spec.WatchSpec) schema.GroupKind {
	gv, _ := schema.ParseGroupVersion(w.APIVersion)
	return gv.WithKind(w.Kind).GroupKind()
}

// selects reports whether op watches obj, an object of kind gk: the kind,
// spec.watch.namespaces and spec.watch.labelSelector. A nil op (gone)
// selects nothing. An unparsable selector selects everything, as the
// informer then does.
func selects(op *spec.WebhookOperator, gk schema.GroupKind, obj metav1.Object) bool {
	if op == nil || watchedKind(op.Spec.Watch) != gk {
		return false
	}
	return op.Spec.Watch.Selects(obj)
}

// holdsAny reports whether obj carries the finalizer or the state
// annotation of the operator called name.
func holdsAny(obj metav1.Object, name string) bool {
	op := &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: name}}
	_, annotated := obj.GetAnnotations()[op.StateAnnotation()]
	return annotated || slices.Contains(obj.GetFinalizers(), op.Finalizer())
}

// releaseIfUnwatched is the pass of a key the parent informer no longer
// holds. Either the object is gone, or it left the selection (a label was
// removed) and the label-filtered watch reported it deleted: then the
// object, read live, is let go — its finalizer and state annotation
// removed — unless it is selected again by then.
func (c *Controller) releaseIfUnwatched(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key of ours; nothing to retry
	}
	gk := c.parent.mapping.GroupVersionKind.GroupKind()
	released, err := c.applier.Release(ctx, c.parent.mapping, ns, name, c.finalizer(), c.stateAnnotation(), func(o *unstructured.Unstructured) bool {
		return !selects(c.op, gk, o) && holdsAny(o, c.op.Name)
	})
	if released || err != nil {
		c.countApply("release", err)
	}
	if released {
		c.log.Info("released an object that left the operator's selection", "object", key)
	}
	return err
}

// sweeper lets go of an operator's objects, kind by kind.
type sweeper struct {
	deps    *Deps
	applier *apply.Applier
}

// ReleaseForbiddenError says which kinds a sweep could not let go of
// because the gateway may not list or patch them (RBAC): their objects may
// still hold the operator's finalizer. The kinds stay recorded.
type ReleaseForbiddenError struct {
	Operator string
	Kinds    []schema.GroupKind
	Err      error // the API server's refusals
}

func (e *ReleaseForbiddenError) Error() string {
	op := &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: e.Operator}}
	return fmt.Sprintf("the gateway may not list or patch %s to release finalizer %s from its objects: %v",
		formatKinds(e.Kinds), op.Finalizer(), e.Err)
}

func (e *ReleaseForbiddenError) Unwrap() error { return e.Err }

// kinds is nil-safe: no error, no kind left.
func (e *ReleaseForbiddenError) kinds() []schema.GroupKind {
	if e == nil {
		return nil
	}
	return e.Kinds
}

// sweep removes the finalizer and state annotation of the operator called
// name from every object of kinds that op (nil: the operator is gone) does
// not select, within the namespaces given (nil: every namespace; they do
// not limit cluster-scoped kinds). Where listing a kind in every namespace
// is forbidden, it lists the namespaces scopes gives for it. It returns
// the kinds it may not list or patch (RBAC: logged, not retried; nil when
// none) and the other errors, which are worth retrying.
func (s sweeper) sweep(ctx context.Context, name string, op *spec.WebhookOperator, kinds []schema.GroupKind, within []string, scopes kindScopes) (forbidden *ReleaseForbiddenError, err error) {
	log := s.deps.Logger.With("operator", name)
	var errs, refused []error
	var denied []schema.GroupKind
	for _, gk := range kinds {
		m, err := s.deps.Mapper.RESTMapping(gk)
		if meta.IsNoMatchError(err) {
			continue // the kind is gone, and its objects with it
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve %s: %w", gk, err))
			continue
		}
		err = s.sweepKind(ctx, name, op, m, within, scopes[gk])
		switch {
		case apierrors.IsForbidden(err):
			log.Warn("cannot release the operator's finalizers from a kind the gateway may not list or patch", "kind", gk.String(), "error", err)
			denied = append(denied, gk)
			refused = append(refused, err)
		case err != nil:
			errs = append(errs, err)
		}
	}
	if len(denied) > 0 {
		forbidden = &ReleaseForbiddenError{Operator: name, Kinds: denied, Err: errors.Join(refused...)}
	}
	return forbidden, errors.Join(errs...)
}

func (s sweeper) sweepKind(ctx context.Context, name string, op *spec.WebhookOperator, m *meta.RESTMapping, within, watched []string) error {
	gk := m.GroupVersionKind.GroupKind()
	stub := &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: name}}
	items, err := s.listHolding(ctx, m, name, within, watched)
	if err != nil {
		return err
	}
	var errs []error
	for _, obj := range items {
		if selects(op, gk, obj) {
			continue
		}
		released, err := s.applier.Release(ctx, m, obj.GetNamespace(), obj.GetName(), stub.Finalizer(), stub.StateAnnotation(), func(o *unstructured.Unstructured) bool {
			return !selects(op, gk, o) && holdsAny(o, name)
		})
		switch {
		case err != nil:
			s.deps.Metrics.ApplyResults.WithLabelValues(name, "release", failure.As(err).Class.String()).Inc()
			errs = append(errs, err)
		case released:
			s.deps.Metrics.ApplyResults.WithLabelValues(name, "release", "success").Inc()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release %s from %s: %w", stub.Finalizer(), m.Resource.Resource, err)
	}
	return nil
}

// listHolding lists, metadata only, the objects of m's kind holding the
// operator's finalizer or annotation: in the namespaces within (nil: in
// every namespace, or, when that is forbidden, in the namespaces watched,
// those the operator's specs watched the kind in: all that namespaced RBAC
// allows, and all where the operator may have held).
func (s sweeper) listHolding(ctx context.Context, m *meta.RESTMapping, name string, within, watched []string) ([]*metav1.ObjectMeta, error) {
	namespaces := []string{metav1.NamespaceAll}
	if within != nil && !clusterScoped(m) {
		namespaces = slices.Clone(within)
	}
	var out []*metav1.ObjectMeta
	for i := 0; i < len(namespaces); i++ {
		opts := metav1.ListOptions{Limit: 500}
		for {
			list, err := s.deps.Metadata.Resource(m.Resource).Namespace(namespaces[i]).List(ctx, opts)
			if apierrors.IsForbidden(err) && namespaces[i] == metav1.NamespaceAll && len(watched) > 0 && !clusterScoped(m) {
				namespaces = append(namespaces, watched...)
				break
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", m.Resource.Resource, err)
			}
			for j := range list.Items {
				if holdsAny(&list.Items[j], name) {
					out = append(out, &list.Items[j].ObjectMeta)
				}
			}
			if opts.Continue = list.GetContinue(); opts.Continue == "" {
				break
			}
		}
	}
	return out, nil
}
