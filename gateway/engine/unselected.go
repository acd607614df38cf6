package engine

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/failure"
)

// unselectedOwner returns the parent that controls child, a cached child of
// this operator, when that parent is not in the parent cache but still
// exists: it left the operator's selection (a label or namespace no longer
// selected) and keeps its children, since it may come back
// (docs/contract.md, "Children"). The cache holds only the selection, so
// without asking the API server such a child would look nobody's and be
// taken over. A child controlled by the answering parent p is its own.
func (c *Controller) unselectedOwner(ctx context.Context, p *pass, child childObject) (*unstructured.Unstructured, error) {
	if controlledBy(child, p.obj.GetUID()) {
		return nil, nil
	}
	return c.uncachedOwner(ctx, child)
}

// uncachedOwner returns the parent of this operator's kind that controls
// child, a cached child of this operator, when the parent cache does not
// hold it but it exists (outside the selection). Another operator asks it
// of a peer's child too (peers.ChildOwner). Only a child controlled by a
// parent of the operator's kind that the cache does not hold costs a
// request, a GET served from the API server's watch cache (resourceVersion
// "0"). A child tracked by label names no parent by name and is not
// looked up.
func (c *Controller) uncachedOwner(ctx context.Context, child childObject) (*unstructured.Unstructured, error) {
	ref := metav1.GetControllerOfNoCopy(child)
	if ref == nil {
		return nil, nil
	}
	gvk := c.parent.mapping.GroupVersionKind
	if gv, err := schema.ParseGroupVersion(ref.APIVersion); err != nil || gv.Group != gvk.Group || ref.Kind != gvk.Kind {
		return nil, nil
	}
	if _, cached := c.parentByUID(string(ref.UID)); cached {
		return nil, nil
	}
	ns := child.GetNamespace()
	if clusterScoped(c.parent.mapping) {
		ns = ""
	}
	live, err := c.Dynamic.Resource(c.parent.mapping.Resource).Namespace(ns).Get(ctx, ref.Name, metav1.GetOptions{ResourceVersion: "0"})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		// Whether the child is another's is unknown: retried, even for a
		// deleting parent, which would leave out a child that is another's.
		return nil, failure.Temporaryf(ReasonChildOwnerUnreadable, "read %s %s, the owner of a child: %w", ref.Kind, ref.Name, err)
	case live.GetUID() != ref.UID:
		return nil, nil // deleted and created again: the child's owner is gone
	}
	return live, nil
}

// ReasonChildOwnerUnreadable: the parent controlling an answered child
// could not be read, so whether the child is another parent's is unknown.
const ReasonChildOwnerUnreadable = "ChildOwnerUnreadable"
