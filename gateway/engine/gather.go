package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/opgate/opgate/callbacks/essence"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// ReasonCRDUnreadable: the watched kind's CRD could not be read (RBAC, the
// API server), so the operator cannot start.
const ReasonCRDUnreadable = "CRDUnreadable"

// loadStatusChecker reads the parent's CRD so status patches can be checked
// against its schema; a built-in parent kind has none (nil checker).
// watchCRD keeps the checker current afterwards.
func (c *Controller) loadStatusChecker(ctx context.Context) (*statusSchema, error) {
	gvr := c.parent.mapping.Resource
	u, err := c.Dynamic.Resource(crdResource).Get(ctx, c.crdName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return c.schemaWithoutCRD()
	}
	if err != nil {
		return nil, failure.Temporaryf(ReasonCRDUnreadable, "read the CRD of %s: %w", gvr, err)
	}
	s := &statusSchema{version: gvr.Version}
	if _, err := s.update(u); err != nil {
		return nil, err
	}
	return s, nil
}

// schemaWithoutCRD is the status schema of a parent kind whose CRD is not
// found: none for a built-in kind. Another kind may be a custom one whose
// CRD was deleted since the REST mapper cached it; run without a schema,
// it would never be checked, even once the CRD is back. So it is
// KindNotFound, and retried, once discovery asked afresh no longer serves
// it. One still served (an aggregated API, or discovery a moment behind a
// deletion) gets a schema unknown until its CRD appears (watchCRD).
func (c *Controller) schemaWithoutCRD() (*statusSchema, error) {
	m := c.parent.mapping
	if scheme.Scheme.Recognizes(m.GroupVersionKind) {
		return nil, nil
	}
	c.Mapper.Reset()
	if _, err := apply.Mapping(c.Mapper, m.GroupVersionKind.GroupVersion().String(), m.GroupVersionKind.Kind); err != nil {
		return nil, fmt.Errorf("no CRD %s: %w", c.crdName(), err)
	}
	return &statusSchema{version: m.Resource.Version}, nil
}

// lacksStatusSubresource says whether the parent kind, a built-in one, has
// no status subresource: a built-in kind has no CRD to say so, and a kind
// without it (a ConfigMap) has no status at all. Discovery lists each
// subresource ("deployments/status"); no list of built-in kinds is kept
// here, so one the API server adds is right too.
func (c *Controller) lacksStatusSubresource() (bool, error) {
	gvr := c.parent.mapping.Resource
	gv := gvr.GroupVersion().String()
	list, err := c.Discovery.ServerResourcesForGroupVersion(gv)
	if err != nil {
		reason := spec.ReasonAPIServerUnreachable
		if apierrors.IsNotFound(err) {
			reason = spec.ReasonKindNotFound
		}
		return false, failure.Temporaryf(reason, "read the discovery of %s for the subresources of %s: %w", gv, gvr.Resource, err)
	}
	status := gvr.Resource + "/status"
	return !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == status }), nil
}

// kindKey names a kind in request maps: "apps/v1/Deployment", "v1/Pod".
func kindKey(apiVersion, kind string) string { return apiVersion + "/" + kind }

// ownedChildren lists the parent's children of declared kinds from the
// informer caches, by the parent's UID (see ownerUID): a child of another
// parent, or of a deleted one of the same name, is never this parent's.
func (c *Controller) ownedChildren(parent *unstructured.Unstructured) children {
	out := children{}
	for _, ch := range c.children {
		byName := map[string]childObject{}
		for _, o := range ch.childByIndex(ownerIndex, string(parent.GetUID())) {
			byName[nameIn(o, parent)] = o
		}
		out[kindKey(ch.spec.APIVersion, ch.spec.Kind)] = byName
	}
	addMissing(c, "children", out)
	return out
}

// relatedObjects lists related objects in the parent's namespace (every
// namespace for a cluster-scoped parent or related kind: relatedNamespace)
// that match each related selector rendered for this parent. A kind whose selector
// cannot be rendered for this parent is left out, and named in the error:
// a handler is never sent a selection other than the declared one.
func (c *Controller) relatedObjects(parent *unstructured.Unstructured) (map[string]map[string]*unstructured.Unstructured, error) {
	out := map[string]map[string]*unstructured.Unstructured{}
	var invalid []string
	for _, rel := range c.related {
		sel, err := c.templates.renderSelector(rel.spec.LabelSelector, parent)
		if err != nil {
			invalid = append(invalid, fmt.Sprintf("related %s/%s selector cannot be rendered for this object: %v", rel.spec.APIVersion, rel.spec.Kind, err))
			continue
		}
		byName := map[string]*unstructured.Unstructured{}
		for _, o := range rel.list(relatedNamespace(rel, parent), sel) {
			byName[nameIn(o, parent)] = o
		}
		out[kindKey(rel.spec.APIVersion, rel.spec.Kind)] = byName
	}
	addMissing(c, "related", out)
	if len(invalid) > 0 {
		return out, failure.Temporaryf(reasonRelatedSelectorInvalid, "%s", strings.Join(invalid, "; "))
	}
	return out, nil
}

func nameIn(o metav1.Object, parent *unstructured.Unstructured) string {
	if o.GetNamespace() != "" && o.GetNamespace() != parent.GetNamespace() {
		return o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetName()
}

// syncDigest summarizes everything a sync reacts to. It leaves out what
// changes on every write without meaning anything (resourceVersion,
// managedFields) and the gateway's own bookkeeping (its annotations and
// finalizers, on every object), so the gateway's own writes never trigger
// a sync. An object the pass wrote, the parent or a child, counts as
// written wherever it appears among the related objects too: listed
// before the write, it would come back as a related object's change. It
// decodes raw children in place (decodeChildren); one that cannot be
// decoded counts with its JSON.
func syncDigest(parent *unstructured.Unstructured, observed children, related map[string]map[string]*unstructured.Unstructured) string {
	_ = decodeChildren(observed)
	// Maps of any all the way down, which jsonenc writes without
	// handing them to encoding/json (the same bytes either way).
	rel := make(map[string]any, len(related))
	for k, objs := range related {
		held := heldOfKind(k, parent, observed)
		byName := make(map[string]any, len(objs))
		for n, o := range objs {
			if w, ok := held[o.GetUID()]; ok {
				o = w
			}
			byName[n] = digestView(o, false)
		}
		rel[k] = byName
	}
	kids := make(map[string]any, len(observed))
	for k, objs := range observed {
		byName := make(map[string]any, len(objs))
		for n, o := range objs {
			switch t := o.(type) {
			case *unstructured.Unstructured:
				byName[n] = digestView(t, false)
			case *rawChild:
				byName[n] = string(t.raw)
			}
		}
		kids[k] = byName
	}
	return essence.Digest(map[string]any{
		"parent":   digestView(parent, true),
		"children": kids,
		"related":  rel,
	})
}

// heldOfKind is, by UID, what the pass holds of the objects of kind key
// (kindKey): the parent and its decoded children, as last read or
// written. Only the same kind at the same version: another version's
// fields may differ.
func heldOfKind(key string, parent *unstructured.Unstructured, observed children) map[types.UID]*unstructured.Unstructured {
	var out map[types.UID]*unstructured.Unstructured
	add := func(o *unstructured.Unstructured) {
		if out == nil {
			out = map[types.UID]*unstructured.Unstructured{}
		}
		out[o.GetUID()] = o
	}
	if kindKey(parent.GetAPIVersion(), parent.GetKind()) == key {
		add(parent)
	}
	for _, o := range observed[key] {
		if u, ok := o.(*unstructured.Unstructured); ok {
			add(u)
		}
	}
	return out
}

// digestView is o as the sync digest sees it: without what changes on
// every write (resourceVersion, managedFields) and without the gateway's
// own annotations and finalizers, of this operator or another one (an
// annotation or finalizer left with none is left out: the same as none).
// The parent (own) is seen without any finalizer. A shallow copy.
func digestView(o *unstructured.Unstructured, own bool) map[string]any {
	m := make(map[string]any, len(o.Object))
	for k, v := range o.Object {
		m[k] = v
	}
	meta, _ := o.Object["metadata"].(map[string]any)
	mc := make(map[string]any, len(meta))
	for k, v := range meta {
		switch k {
		case "resourceVersion", "managedFields":
			continue
		case "finalizers":
			if own {
				continue
			}
			v = ownlessList(v)
		case "annotations":
			v = ownless(v)
		}
		if v != nil {
			mc[k] = v
		}
	}
	m["metadata"] = mc
	return m
}

// ownless is an annotations map less opgate's own: nil when none is left.
// Read in place: only a map with one of them is copied.
func ownless(v any) any {
	in, _ := v.(map[string]any)
	n := 0
	for k := range in {
		if strings.HasPrefix(k, essence.OwnPrefix) {
			n++
		}
	}
	switch {
	case n == 0 && len(in) > 0:
		return v
	case n == len(in):
		return nil
	}
	out := make(map[string]any, len(in)-n)
	for k, a := range in {
		if !strings.HasPrefix(k, essence.OwnPrefix) {
			out[k] = a
		}
	}
	return out
}

// ownlessList is a finalizers list less opgate's own: nil when none is
// left. Read in place: only a list with one of them is copied.
func ownlessList(v any) any {
	in, ok := v.([]any)
	if !ok {
		return v
	}
	own := func(f any) bool {
		s, ok := f.(string)
		return ok && strings.HasPrefix(s, essence.OwnPrefix)
	}
	if !slices.ContainsFunc(in, own) {
		if len(in) == 0 {
			return nil
		}
		return v
	}
	out := slices.DeleteFunc(slices.Clone(in), own)
	if len(out) == 0 {
		return nil
	}
	return out
}
