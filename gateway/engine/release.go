package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/check"
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
	var last *unstructured.Unstructured // the object as read when let go
	released, err := c.applier.Release(ctx, c.parent.mapping, ns, name, c.finalizer(), c.stateAnnotation(), func(o *unstructured.Unstructured) bool {
		last = o
		return !selects(c.op, gk, o) && holdsAny(o, c.op.Name)
	})
	if released || err != nil {
		c.countApply("release", err)
	}
	if released {
		c.log.Info("released an object that left the operator's selection", "object", key)
		c.warnChildrenLeftBehind(last)
	}
	return err
}

// ReasonChildrenLeftBehind: an object let go still has children only the
// gateway deletes (by label); they stay when it is deleted.
const ReasonChildrenLeftBehind = "ChildrenLeftBehind"

// warnChildrenLeftBehind tells, on parent (just let go), how many of its
// children the gateway would have deleted with it (by label) and how to
// delete them: it no longer will, and cannot now, since the parent still
// exists and may come back into the selection. The children are read from
// the informer caches, which hold this operator's children only.
func (c *Controller) warnChildrenLeftBehind(parent *unstructured.Unstructured) {
	uid := string(parent.GetUID())
	var resources, names []string
	for _, ch := range c.children {
		if !c.byLabel(ch) {
			continue
		}
		// From the cache, not a list of the API server: a relabel of many
		// parents would otherwise list every namespace once per parent.
		var found bool
		for _, child := range ch.childByIndex(ownerIndex, uid) {
			if child.GetDeletionTimestamp() != nil || child.GetLabels()[check.OwnerUIDLabel] != uid {
				continue // going, or owned by reference: collected with the parent
			}
			found = true
			names = append(names, ch.spec.Kind+" "+metaKey(child))
		}
		if found {
			resources = append(resources, ch.mapping.Resource.GroupResource().String())
		}
	}
	if len(names) == 0 {
		return
	}
	c.warn(parent, ReasonChildrenLeftBehind, truncate(fmt.Sprintf(
		"left the selection of operator %s with %d %s the gateway deletes only with this object: they now stay behind when it is deleted; delete them with kubectl delete %s -A -l %s (%s)",
		c.op.Name, len(names), plural(len(names), "child", "children"), strings.Join(resources, ","), c.ownedByLabel(uid), strings.Join(names, ", ")), 1024))
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
// is forbidden, it lists the namespaces scopes gives for it, one by one.
// It returns the kinds it may not list or patch somewhere (RBAC: logged,
// not retried; nil when none) and the other errors, which are worth
// retrying.
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
		refusal, err := s.sweepKind(ctx, name, op, m, within, scopes[gk])
		if refusal != nil {
			log.Warn("cannot release the operator's finalizers from a kind the gateway may not list or patch", "kind", gk.String(), "error", refusal)
			denied = append(denied, gk)
			refused = append(refused, refusal)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(denied) > 0 {
		forbidden = &ReleaseForbiddenError{Operator: name, Kinds: denied, Err: errors.Join(refused...)}
	}
	return forbidden, errors.Join(errs...)
}

// sweepKind lets go of the operator's objects of m's kind: in every
// namespace at once, or namespace by namespace (within, or, when listing
// in every namespace is forbidden, watched: the namespaces the operator's
// specs watched the kind in, all that namespaced RBAC allows and all where
// the operator may have held). It returns the refusals (RBAC) apart from
// the other errors.
func (s sweeper) sweepKind(ctx context.Context, name string, op *spec.WebhookOperator, m *meta.RESTMapping, within, watched []string) (refused, err error) {
	if clusterScoped(m) {
		within = nil
	}
	if within != nil {
		return s.sweepEach(ctx, name, op, m, within)
	}
	items, err := s.listHolding(ctx, m, name, metav1.NamespaceAll)
	if apierrors.IsForbidden(err) && len(watched) > 0 && !clusterScoped(m) {
		return s.sweepEach(ctx, name, op, m, watched)
	}
	if err == nil {
		err = s.release(ctx, name, op, m, items)
	}
	if apierrors.IsForbidden(err) {
		return err, nil
	}
	return nil, err
}

// sweepEach sweeps m's kind in each of namespaces, so that one the gateway
// may not list or patch in does not keep it from the others. A namespace
// refused because it no longer exists (its Roles went with it, and no rule
// can be granted there) holds nothing and is skipped.
func (s sweeper) sweepEach(ctx context.Context, name string, op *spec.WebhookOperator, m *meta.RESTMapping, namespaces []string) (refused, err error) {
	var refusals, errs []error
	for _, ns := range namespaces {
		items, err := s.listHolding(ctx, m, name, ns)
		if err == nil {
			err = s.release(ctx, name, op, m, items)
		}
		if !apierrors.IsForbidden(err) {
			errs = append(errs, err) // nil is dropped by errors.Join
			continue
		}
		gone, goneErr := s.namespaceGone(ctx, ns)
		if gone {
			s.deps.Logger.Info("skipped a namespace that no longer exists: it holds nothing", "operator", name, "kind", m.GroupVersionKind.GroupKind().String(), "namespace", ns)
			continue
		}
		refusals = append(refusals, err)
		errs = append(errs, goneErr)
	}
	return errors.Join(refusals...), errors.Join(errs...)
}

// namespaceGone reports whether namespace ns no longer exists. An error
// other than NotFound (a gateway not allowed to get namespaces: a chart
// older than that rule) is returned when worth retrying, and means it may
// exist.
func (s sweeper) namespaceGone(ctx context.Context, ns string) (bool, error) {
	_, err := s.deps.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err == nil || apierrors.IsForbidden(err):
		return false, nil
	}
	return false, fmt.Errorf("read namespace %s: %w", ns, err)
}

// release lets go of items, objects of m's kind holding the operator's
// finalizer or annotation, unless op selects them.
func (s sweeper) release(ctx context.Context, name string, op *spec.WebhookOperator, m *meta.RESTMapping, items []*metav1.ObjectMeta) error {
	gk := m.GroupVersionKind.GroupKind()
	stub := &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: name}}
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

// listHolding lists, metadata only, the objects of m's kind in namespace
// ns (NamespaceAll: every one) holding the operator's finalizer or
// annotation.
func (s sweeper) listHolding(ctx context.Context, m *meta.RESTMapping, name, ns string) ([]*metav1.ObjectMeta, error) {
	var out []*metav1.ObjectMeta
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := s.deps.Metadata.Resource(m.Resource).Namespace(ns).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", m.Resource.Resource, err)
		}
		for j := range list.Items {
			if holdsAny(&list.Items[j], name) {
				out = append(out, &list.Items[j].ObjectMeta)
			}
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}
