package engine

import (
	"errors"
	"fmt"
	"sync/atomic"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/check"
)

// statusSchema is the status checker of the parent's CRD, rebuilt whenever
// the CRD's spec changes, so that status checks follow a CRD upgrade
// without a restart. Safe for concurrent use.
type statusSchema struct {
	version string                      // the watched version of the CRD
	built   atomic.Pointer[builtSchema] // nil while the CRD is unknown
}

// builtSchema is a checker and the CRD it was built from. A CRD deleted
// and created again starts at generation 1 again: only its UID tells it
// from the old one.
type builtSchema struct {
	checker    *check.StatusChecker
	uid        types.UID
	generation int64
	// gatewayPruned lists the fields of the status the gateway keeps with
	// status.conditions that the schema would prune (gatewayFieldsPruned).
	gatewayPruned []string
}

// current is the checker of the CRD as last seen; nil for a kind without
// CRD (s nil) or while the CRD is unknown (deleted, or not seen yet).
// Without one, statuses are written unchecked, to the status subresource.
func (s *statusSchema) current() *check.StatusChecker {
	if s == nil {
		return nil
	}
	if b := s.built.Load(); b != nil {
		return b.checker
	}
	return nil
}

// update rebuilds the checker from u, a CRD, unless it was built from u
// (same UID and generation) already. It keeps the previous checker when u
// cannot be used.
func (s *statusSchema) update(u *unstructured.Unstructured) (changed bool, err error) {
	if b := s.built.Load(); b != nil && b.uid == u.GetUID() && b.generation == u.GetGeneration() {
		return false, nil
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &crd); err != nil {
		return false, fmt.Errorf("decode the CRD %s: %w", u.GetName(), err)
	}
	checker, err := check.NewStatusChecker(&crd, s.version)
	if err != nil {
		return false, err
	}
	s.built.Store(&builtSchema{checker: checker, uid: u.GetUID(), generation: u.GetGeneration(), gatewayPruned: gatewayFieldsPruned(checker)})
	return true, nil
}

// gatewayPruned lists the fields of the status kept with
// status.conditions that the CRD as last seen has no room for.
func (s *statusSchema) gatewayPruned() []string {
	if s == nil {
		return nil
	}
	if b := s.built.Load(); b != nil {
		return b.gatewayPruned
	}
	return nil
}

// forget makes the CRD unknown (it was deleted) until the next one is seen,
// and says whether it was known.
func (s *statusSchema) forget() bool { return s.built.Swap(nil) != nil }

// crdName is the name of the parent's CRD: plural.group.
func (c *Controller) crdName() string {
	return crdNameOf(c.parent.mapping)
}

// crdNameOf is the name of the CRD that defines m's kind: resource.group.
func crdNameOf(m *meta.RESTMapping) string {
	return m.Resource.Resource + "." + m.Resource.Group
}

// crdSelection selects the parent's CRD alone.
func (c *Controller) crdSelection() selection {
	return selection{fields: "metadata.name=" + c.crdName()}
}

func (c *Controller) crdDescription() string {
	return describeInformer(crdResource, metav1.NamespaceAll, c.crdSelection())
}

// watchCRD builds (without starting) an informer on the parent's CRD that
// refreshes the status checker, and resets the REST mapper, when the CRD
// changes. A built-in parent kind has no CRD and needs none.
func (c *Controller) watchCRD() {
	if c.status == nil {
		return
	}
	name := c.crdName()
	c.crdInformer = newTrackedInformer(c.Deps, crdResource, metav1.NamespaceAll, c.crdSelection(),
		c.crdDescription(), cache.Indexers{}, &c.health)
	refresh := func(obj any) {
		u, ok := asUnstructured(obj)
		if !ok {
			return
		}
		if scopeDiffers(u, c.parent.mapping) {
			c.rescoped(name)
			return
		}
		refused := c.refusesConditions()
		changed, err := c.status.update(u)
		if err != nil {
			c.log.Warn("the CRD of the watched kind changed but its status schema cannot be used; status checks keep the previous one", "crd", name, "error", err)
			return
		}
		if changed {
			c.Mapper.Reset() // versions or scope may have changed with it
			c.applier.Unpin()
			c.log.Info("the CRD of the watched kind changed: status checks follow its new schema", "crd", name, "generation", u.GetGeneration())
			c.notifyChanged() // Health may say otherwise now
			if refused && !c.refusesConditions() {
				c.enqueueAll() // the objects left alone while refused
			}
		}
	}
	// Its objects went with it; a CRD created again under its name is
	// another one, perhaps of other versions, scope or subresources.
	forget := func(any) {
		if !c.status.forget() {
			return
		}
		c.Mapper.Reset()
		c.applier.Unpin()
		c.log.Warn("the CRD of the watched kind was deleted: its objects with it; waiting for it to be created again", "crd", name)
		c.notifyChanged()
	}
	if _, err := c.crdInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    refresh,
		UpdateFunc: func(_, n any) { refresh(n) },
		DeleteFunc: forget,
	}); err != nil {
		utilruntime.HandleError(err)
	}
}

// errKindRescoped ends Run when the CRD of one of the operator's kinds
// was created again with the other scope: its informers, writes and the
// decisions that hang on the scope (checkWatchScope, how children are
// owned) were made for the old one, so the controller is built again. It
// ends Run too when a child or related kind the controller runs without
// (missingKind) is served: its informer and scope are to be had now.
var errKindRescoped = errors.New("a CRD of the operator's kinds was created again with the other scope, or created")

// scopeDiffers says whether crd, a CRD, gives its kind another scope than m.
func scopeDiffers(crd *unstructured.Unstructured, m *meta.RESTMapping) bool {
	scope, _, _ := unstructured.NestedString(crd.Object, "spec", "scope")
	return scope != "" && (scope == string(apiextensionsv1.ClusterScoped)) != clusterScoped(m)
}

// rescoped asks Run to end with errKindRescoped.
func (c *Controller) rescoped(crd string) {
	c.log.Info("a CRD of the operator's kinds was created again with the other scope: the operator starts again on its new scope", "crd", crd)
	c.rebuild()
}

// rebuild asks Run to end with errKindRescoped: the Manager builds the
// controller again, mapping its kinds afresh.
func (c *Controller) rebuild() {
	select {
	case c.rescope <- struct{}{}:
	default: // asked already
	}
}

// watchKindScopes builds (without starting) an informer on the CRD of
// each custom child and related kind that ends Run when the CRD is created
// again with the other scope (the parent's is watchCRD's). It keeps no
// more of a CRD than its scope.
func (c *Controller) watchKindScopes() {
	seen := map[string]bool{}
	if c.crdInformer != nil {
		seen[c.crdName()] = true
	}
	for _, w := range c.allWatched()[1:] {
		m := w.mapping
		name := crdNameOf(m)
		if seen[name] || scheme.Scheme.Recognizes(m.GroupVersionKind) {
			continue
		}
		seen[name] = true
		sel := selection{fields: "metadata.name=" + name}
		what := describeInformer(crdResource, metav1.NamespaceAll, sel)
		inf := newTrackedInformer(c.Deps, crdResource, metav1.NamespaceAll, sel, what, cache.Indexers{}, &c.health)
		_ = inf.SetTransform(scopeOnly)
		check := func(obj any) {
			if u, ok := asUnstructured(obj); ok && scopeDiffers(u, m) {
				c.rescoped(name)
			}
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    check,
			UpdateFunc: func(_, n any) { check(n) },
		}); err != nil {
			utilruntime.HandleError(err)
		}
		c.scopeInformers = append(c.scopeInformers, namedInformer{what, inf})
	}
}

// scopeOnly keeps of a CRD its name, UID, resourceVersion and scope.
func scopeOnly(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	out := &unstructured.Unstructured{}
	out.SetGroupVersionKind(u.GroupVersionKind())
	out.SetName(u.GetName())
	out.SetUID(u.GetUID())
	out.SetResourceVersion(u.GetResourceVersion())
	scope, _, _ := unstructured.NestedString(u.Object, "spec", "scope")
	_ = unstructured.SetNestedField(out.Object, scope, "spec", "scope")
	return out, nil
}

// enqueueAll queues every watched object.
func (c *Controller) enqueueAll() {
	for _, inf := range c.parent.informers {
		for _, key := range inf.GetIndexer().ListKeys() {
			c.queue.Add(key)
		}
	}
}
