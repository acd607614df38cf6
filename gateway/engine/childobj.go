package engine

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/failure"
)

// childObject is a child as a pass holds it: a cached *rawChild, or what
// an apply answered, an *unstructured.Unstructured (so is a cached child
// when the informer decodes into maps: see informerFor).
type childObject interface {
	metav1.Object
	runtime.Object
}

// children are a pass's observed children, by kind key and name (nameIn).
type children = map[string]map[string]childObject

// informerFor builds the informer of w in namespace ns: a child kind's
// keeps rawChild objects when Deps.REST (or WatchREST) is a REST client
// (always, in `gateway run`); every other kind, and a child kind
// without it (unit tests with fake clients), decodes into maps.
func (c *Controller) informerFor(w *watched, ns string, indexers cache.Indexers) cache.SharedIndexInformer {
	for _, ch := range c.children {
		if ch.watched != w {
			continue
		}
		src := c.REST
		if c.WatchREST != nil {
			src = c.WatchREST
		}
		rc, ok := src.(*rest.RESTClient)
		if !ok {
			break
		}
		inf, err := newChildInformer(rc, w.mapping, ns, w.selection, w.describe(ns), indexers, &c.health)
		if err == nil {
			return inf
		}
		utilruntime.HandleError(fmt.Errorf("%w: %w", errRawChildren, err))
	}
	return newTrackedInformer(c.Deps, w.mapping.Resource, ns, w.selection, w.describe(ns), indexers, &c.health)
}

// childByIndex returns the cached children whose index value is value.
func (w *watched) childByIndex(index, value string) []childObject {
	return cachedByIndex[childObject](w, index, value)
}

// getChild returns the cached child with the informer key key.
func (w *watched) getChild(key string) (childObject, bool) {
	for _, inf := range w.informers {
		if o, ok, err := inf.GetIndexer().GetByKey(key); err == nil && ok {
			if co, ok := o.(childObject); ok {
				return co, true
			}
		}
	}
	return nil, false
}

// asMetaObject unwraps an informer event's object, tombstones included.
func asMetaObject(obj any) (metav1.Object, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o, err := meta.Accessor(obj)
	return o, err == nil
}

// wholeChild is the child decoded whole.
func wholeChild(o childObject) (*unstructured.Unstructured, error) {
	switch t := o.(type) {
	case *unstructured.Unstructured:
		return t, nil
	case *rawChild:
		return t.whole()
	}
	return nil, fmt.Errorf("child %s of unexpected type %T", metaKey(o), o)
}

// decodeChildren decodes the pass's raw children whole, in place: a pass
// decodes each child once at most, and only when it needs the whole of it
// (the sync digest; requests carry them as JSON, see requestChildren).
func decodeChildren(in children) error {
	for _, byName := range in {
		for name, o := range byName {
			if _, ok := o.(*unstructured.Unstructured); ok {
				continue
			}
			u, err := wholeChild(o)
			if err != nil {
				return failure.Temporaryf("ChildUnreadable", "%w", err)
			}
			byName[name] = u
		}
	}
	return nil
}

// requestChildren is the pass's children as a request carries them: a
// cached child as its JSON (the API server's, less managedFields), sent
// as it is rather than decoded and encoded again; a child decoded or
// answered by a write, as its map.
func requestChildren(in children) call.Children {
	if in == nil {
		return nil
	}
	out := make(call.Children, len(in))
	for k, byName := range in {
		m := make(map[string]any, len(byName))
		for n, o := range byName {
			switch t := o.(type) {
			case *rawChild:
				if t != nil {
					m[n] = json.RawMessage(t.raw)
				}
			case *unstructured.Unstructured:
				if t != nil {
					m[n] = t.Object
				}
			}
		}
		out[k] = m
	}
	return out
}

// metaOnly is an *unstructured.Unstructured with o's kind and metadata
// alone: what deleting or replacing a child reads of it.
func metaOnly(o childObject) *unstructured.Unstructured {
	if u, ok := o.(*unstructured.Unstructured); ok {
		return u
	}
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.GetObjectKind().SetGroupVersionKind(o.GetObjectKind().GroupVersionKind())
	u.SetName(o.GetName())
	u.SetNamespace(o.GetNamespace())
	u.SetUID(o.GetUID())
	u.SetResourceVersion(o.GetResourceVersion())
	u.SetLabels(o.GetLabels())
	u.SetAnnotations(o.GetAnnotations())
	u.SetOwnerReferences(o.GetOwnerReferences())
	u.SetFinalizers(o.GetFinalizers())
	u.SetDeletionTimestamp(o.GetDeletionTimestamp())
	return u
}
