package engine

import (
	"fmt"
	"sync/atomic"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/check"
)

// statusSchema is the status checker of the parent's CRD, rebuilt whenever
// the CRD's spec changes, so that status checks follow a CRD upgrade
// without a restart. Safe for concurrent use.
type statusSchema struct {
	version    string // the watched version of the CRD
	checker    atomic.Pointer[check.StatusChecker]
	generation atomic.Int64 // of the CRD the checker was built from
}

// Check is check.StatusChecker.Check with the current schema.
func (s *statusSchema) Check(current, patch map[string]any) (map[string]any, []string, error) {
	return s.checker.Load().Check(current, patch)
}

// HasStatusSubresource is check.StatusChecker.HasStatusSubresource with the
// current CRD.
func (s *statusSchema) HasStatusSubresource() bool { return s.checker.Load().HasStatusSubresource() }

// update rebuilds the checker from u, a CRD, unless it was built from u's
// generation already. It keeps the previous checker when u cannot be used.
func (s *statusSchema) update(u *unstructured.Unstructured) (changed bool, err error) {
	if s.checker.Load() != nil && s.generation.Load() == u.GetGeneration() {
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
	s.checker.Store(checker)
	s.generation.Store(u.GetGeneration())
	return true, nil
}

// crdName is the name of the parent's CRD: plural.group.
func (c *Controller) crdName() string {
	gvr := c.parent.mapping.Resource
	return gvr.Resource + "." + gvr.Group
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
		refused := c.conditionsRefused() != ""
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
			if refused && c.conditionsRefused() == "" {
				c.enqueueAll() // the objects left alone while refused
			}
		}
	}
	if _, err := c.crdInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    refresh,
		UpdateFunc: func(_, n any) { refresh(n) },
	}); err != nil {
		utilruntime.HandleError(err)
	}
}

// enqueueAll queues every watched object.
func (c *Controller) enqueueAll() {
	for _, inf := range c.parent.informers {
		for _, key := range inf.GetIndexer().ListKeys() {
			c.queue.Add(key)
		}
	}
}
