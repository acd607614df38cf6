package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
)

// Informer indexes: children by the UID of the parent they belong to,
// parents by their own UID (to map a child's change to its parent).
const (
	ownerIndex = "opgate.dev/owner"
	uidIndex   = "opgate.dev/uid"
)

// ReasonChildOwnedElsewhere: an answer names a child another existing
// parent owns, of the same operator or of another one of the gateway.
const ReasonChildOwnedElsewhere = "ChildOwnedElsewhere"

// ownerUID is the UID of the parent a child belongs to: its controller's,
// or, without one, the OwnerUIDLabel's (children the garbage collector
// cannot tie to their parent). Empty: nobody's.
func ownerUID(o metav1.Object) string {
	if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
		return string(ref.UID)
	}
	return o.GetLabels()[check.OwnerUIDLabel]
}

// controlledBy says whether o's controller ownerReference names the
// object with UID uid.
func controlledBy(o metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOfNoCopy(o)
	return ref != nil && ref.UID == uid
}

func indexByOwner(obj any) ([]string, error) {
	o, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	if uid := ownerUID(o); uid != "" {
		return []string{uid}, nil
	}
	return nil, nil
}

func indexByUID(obj any) ([]string, error) {
	o, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	return []string{string(o.GetUID())}, nil
}

// byIndex returns the cached objects whose index value is value.
func (w *watched) byIndex(index, value string) []*unstructured.Unstructured {
	return cachedByIndex[*unstructured.Unstructured](w, index, value)
}

// cachedByIndex returns w's cached objects of type T whose index value is
// value.
func cachedByIndex[T any](w *watched, index, value string) []T {
	var out []T
	for _, inf := range w.informers {
		objs, err := inf.GetIndexer().ByIndex(index, value)
		if err != nil {
			utilruntime.HandleError(err)
			continue
		}
		for _, o := range objs {
			if t, ok := o.(T); ok {
				out = append(out, t)
			}
		}
	}
	return out
}

func (c *Controller) parentByUID(uid string) (*unstructured.Unstructured, bool) {
	if ps := c.parent.byIndex(uidIndex, uid); len(ps) > 0 {
		return ps[0], true
	}
	return nil, false
}

// owningParent is the parent of this operator that owns child, a cached
// child, while that parent still exists.
func (c *Controller) owningParent(child childObject) (*unstructured.Unstructured, bool) {
	owner := ownerUID(child)
	if owner == "" {
		return nil, false
	}
	return c.parentByUID(owner)
}

// enqueueOwner maps a child to the parent it belongs to, by UID: a stale
// reference to a deleted parent of the same name enqueues nobody.
func (c *Controller) enqueueOwner(obj any) {
	o, ok := asMetaObject(obj)
	if !ok {
		return
	}
	if uid := ownerUID(o); uid != "" {
		if parent, ok := c.parentByUID(uid); ok {
			c.enqueueObject(parent)
		}
	}
}

// enqueueOwners enqueues the owners before and after a change, so that a
// parent whose child was taken away (its owner label edited) notices.
func (c *Controller) enqueueOwners(old, cur any) {
	c.enqueueOwner(old)
	if o, n := ownerOf(old), ownerOf(cur); o != n {
		c.enqueueOwner(cur)
	}
}

func ownerOf(obj any) string {
	if o, ok := asMetaObject(obj); ok {
		return ownerUID(o)
	}
	return ""
}

func clusterScoped(m *meta.RESTMapping) bool { return m.Scope.Name() == meta.RESTScopeNameRoot }

// byLabel says whether children of this kind may belong to the parent by
// label: the parent is namespaced and the kind may leave its namespace.
func (c *Controller) byLabel(ch childKind) bool {
	return !clusterScoped(c.parent.mapping) && (ch.spec.AllowCrossNamespace || clusterScoped(ch.mapping))
}

// childrenByLabel says whether the operator's objects may own children
// tracked by label, which only the gateway deletes.
func (c *Controller) childrenByLabel() bool {
	for _, ch := range c.children {
		if c.byLabel(ch) {
			return true
		}
	}
	return false
}

func (c *Controller) scopes() check.Scopes {
	out := check.Scopes{}
	for _, ch := range c.children {
		out[ch.mapping.GroupVersionKind.GroupKind()] = clusterScoped(ch.mapping)
	}
	return out
}

// settleChildrenByLabel deletes the parent's children tracked by label
// before its finalizer goes (the garbage collector cannot), or, when the
// parent is deleted with propagationPolicy Orphan, orphans them as the
// collector orphans the ownerReference ones: it removes the owner label
// and leaves them. It lists them from the API server, not the cache, so a
// child applied a moment ago is not missed. Deleted means accepted by the
// API server: a child's own finalizers do not hold its parent back.
func (c *Controller) settleChildrenByLabel(ctx context.Context, p *pass) error {
	uid := string(p.obj.GetUID())
	orphan := c.orphaning(p)
	var failed []string
	kept := 0
	for _, ch := range c.children {
		if !c.byLabel(ch) {
			continue
		}
		children, err := c.listByLabel(ctx, ch, uid)
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		for _, child := range children {
			if orphan {
				err = c.applier.RemoveLabel(ctx, child, check.OwnerUIDLabel, uid)
				c.countApply("orphan", err)
				kept++
			} else {
				err = c.applier.DeleteChild(ctx, child)
				c.countApply("prune", err)
			}
			if err != nil {
				failed = append(failed, err.Error())
			}
		}
	}
	if len(failed) == 0 {
		if kept > 0 {
			c.event(p.obj, "Normal", ReasonChildrenOrphaned, fmt.Sprintf(
				"deleted with propagationPolicy Orphan: %d %s tracked by label %s kept, the label removed", kept, plural(kept, "child", "children"), check.OwnerUIDLabel))
		}
		return nil
	}
	reason, what := "ChildrenNotDeleted", "children the garbage collector cannot reach are not deleted"
	if orphan {
		reason, what = "ChildrenNotOrphaned", "children tracked by label are not orphaned (propagationPolicy Orphan)"
	}
	err := failure.Temporaryf(reason, "%s, so the finalizer %s stays: %s", what, c.finalizer(), strings.Join(failed, "; "))
	if p.obj.GetAnnotations()[decide.ReleaseAnnotation] == "true" {
		// The user asked to let the object go: children are best effort.
		c.warn(p.obj, reason, truncate(err.Error()+"; released anyway ("+decide.ReleaseAnnotation+")", 1024))
		return nil
	}
	c.warn(p.obj, reason, truncate(err.Error(), 1024))
	return err
}

// ReasonChildrenOrphaned: a parent deleted with propagationPolicy Orphan
// left its children tracked by label, as asked.
const ReasonChildrenOrphaned = "ChildrenOrphaned"

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// orphaning says whether the deleting object of p is deleted with
// propagationPolicy Orphan. The API server adds the orphan finalizer with
// the deletionTimestamp, in one write; the garbage collector removes it
// once it has orphaned the ownerReference dependents, which may be before
// this pass. So it is also taken from what an informer event showed this
// process (noteOrphanDelete) and from the state a pass recorded it in. A
// gateway that starts after the collector removed the finalizer, with no
// state recording it, cannot tell (docs/contract.md, "Children").
func (c *Controller) orphaning(p *pass) bool {
	if p.st != nil && p.st.Orphan || orphanFinalizer(p.obj) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return p.mem != nil && p.mem.orphan
}

func orphanFinalizer(o metav1.Object) bool {
	return o.GetDeletionTimestamp() != nil && slices.Contains(o.GetFinalizers(), metav1.FinalizerOrphanDependents)
}

// noteOrphanDelete remembers an object the informer shows deleting with
// the orphan finalizer, for orphaning: the event may be the only sight of
// it the gateway gets.
func (c *Controller) noteOrphanDelete(obj any) {
	o, ok := asMetaObject(obj)
	if !ok || !orphanFinalizer(o) || !c.childrenByLabel() {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(o)
	if err != nil {
		return
	}
	m := c.memoryOf(key, o.GetUID())
	c.mu.Lock()
	defer c.mu.Unlock()
	m.orphan = true
}

// ownedByLabel selects this operator's children owned by label by the
// parent uid: other operators of the gateway may own children of the same
// parent by the same label.
func (c *Controller) ownedByLabel(uid string) string {
	return labels.SelectorFromSet(labels.Set{check.OperatorLabel: c.op.Name, check.OwnerUIDLabel: uid}).String()
}

// listByLabel lists, from the API server, the children of ch's kind that
// belong by label to the parent with UID uid and are not being deleted.
func (c *Controller) listByLabel(ctx context.Context, ch childKind, uid string) ([]*unstructured.Unstructured, error) {
	list, err := c.Dynamic.Resource(ch.mapping.Resource).List(ctx, metav1.ListOptions{LabelSelector: c.ownedByLabel(uid)})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", ch.mapping.Resource.Resource, err)
	}
	var out []*unstructured.Unstructured
	for i := range list.Items {
		if child := &list.Items[i]; ownerUID(child) == uid && child.GetDeletionTimestamp() == nil {
			out = append(out, child)
		}
	}
	return out, nil
}

// refuseForeignChildren refuses an answer naming a child that belongs to
// another parent that still exists, of this operator or (ChildOwners) of
// another one of the gateway: applying it would silently move it (one field
// manager applies for every parent and operator), and the two parents
// would take it from each other on every sync. It is a
// temporary failure: the other parent may be on its way out (deleted, and
// re-created with the same name), and its children with it. A child of a
// parent that is gone is adopted. It refuses alike (ChildExists) an answer
// naming an object that exists without this operator's label, which the
// gateway never made (kubectl's, Helm's): the forced apply would overwrite
// it, and the parent would prune it or take it along when deleted.
// While p's parent is being deleted such a child is left out instead (logged,
// and a Normal Event), as one whose kind or namespace is missing: failing
// the delete callback for it would hold the parent for as long as the
// other owner exists. It returns the children to apply.
func (c *Controller) refuseForeignChildren(ctx context.Context, p *pass, desired []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	var problems []string
	var reasons []string // of problems, in order
	out := make([]*unstructured.Unstructured, 0, len(desired))
	for i, child := range desired {
		reason, problem, err := c.foreignChild(ctx, p, child)
		if err != nil {
			return nil, err
		}
		if problem != "" {
			problems = append(problems, fmt.Sprintf("children[%d] %s", i, problem))
			reasons = append(reasons, reason)
			continue
		}
		out = append(out, child)
	}
	if len(problems) == 0 {
		return desired, nil
	}
	if p.obj.GetDeletionTimestamp() == nil {
		// One reason for the answer: the first problem's, the message
		// names them all.
		return nil, failure.Temporaryf(reasons[0], "response not applied: %s", strings.Join(problems, "; "))
	}
	for _, reason := range []string{ReasonChildOwnedElsewhere, ReasonChildExists} {
		var these []string
		for i, r := range reasons {
			if r == reason {
				these = append(these, problems[i])
			}
		}
		if len(these) == 0 {
			continue
		}
		msg := strings.Join(these, "; ")
		c.log.Info("children left out of a deleting object's answer: they are not the operator's to take", "object", p.key, "reason", reason, "children", msg)
		c.event(p.obj, "Normal", reason, truncate("left out of the answer while deleting (not taken over): "+msg, 1024))
	}
	return out, nil
}

// ReasonChildExists: an answer names a child that exists but that the
// gateway did not make for the operator (no opgate.dev/operator label of
// it): made by a user, Helm, another tool or another gateway install.
const ReasonChildExists = "ChildExists"

// foreignChild says, with its reason, which other owner child belongs to
// ("" for none), a parent outside the selection of this operator or of the
// operator holding it included (unselectedOwner, uncachedOwner: a GET of
// that parent, only for a cached child whose parent is not cached). A
// child no operator of the gateway sees is read from the API server, once,
// never one an operator's cache holds (the path of every update).
func (c *Controller) foreignChild(ctx context.Context, p *pass, child *unstructured.Unstructured) (reason, problem string, err error) {
	ch, ok := c.childSpec(child)
	if !ok {
		return "", "", nil
	}
	existing, ok := ch.getChild(objectKey(child))
	if !ok {
		// Not ours: another operator's cache may hold it.
		if c.ChildOwners != nil {
			op, other, held, err := c.ChildOwners.ChildOwner(ctx, c.op.Name, p.obj.GetUID(), ch.mapping.GroupVersionKind.GroupKind(), objectKey(child))
			if err != nil {
				return "", "", fmt.Errorf("%s %s is operator %s's: %w", child.GetKind(), objectKey(child), op, err)
			}
			if other != nil {
				return ReasonChildOwnedElsewhere, fmt.Sprintf("%s %s belongs to %s %s of operator %s", child.GetKind(), objectKey(child), other.GetKind(), keyOf(other), op), nil
			}
			if held {
				return "", "", nil // the gateway's, its parent gone: adopted
			}
		}
		return c.existingChild(ctx, p, child)
	}
	if other, ok := c.owningParent(existing); ok && other.GetUID() != p.obj.GetUID() {
		return ReasonChildOwnedElsewhere, fmt.Sprintf("%s %s belongs to %s %s", child.GetKind(), objectKey(child), other.GetKind(), keyOf(other)), nil
	}
	switch other, err := c.unselectedOwner(ctx, p, existing); {
	case err != nil:
		return "", "", fmt.Errorf("%s %s may belong to another parent: %w", child.GetKind(), objectKey(child), err)
	case other != nil:
		return ReasonChildOwnedElsewhere, fmt.Sprintf("%s %s belongs to %s %s, outside the operator's selection", child.GetKind(), objectKey(child), other.GetKind(), keyOf(other)), nil
	}
	return "", "", nil
}

// existingChild reads a child no operator of the gateway sees from the API
// server: one that exists without this operator's label was not made for
// it, and is not taken over. One with the label is the operator's, made
// an instant ago (the cache lags): it goes on as one in the cache; so
// does one the parent controls (its labels taken off by someone).
func (c *Controller) existingChild(ctx context.Context, p *pass, child *unstructured.Unstructured) (reason, problem string, err error) {
	if p.children[kindKey(child.GetAPIVersion(), child.GetKind())][nameIn(child, p.obj)] != nil {
		return "", "", nil // this pass applied it already
	}
	m, err := c.applier.ExistingMeta(ctx, child)
	if err != nil || m == nil || m.Labels[check.OperatorLabel] == c.op.Name {
		return "", "", err
	}
	if controlledBy(m, p.obj.GetUID()) || m.Labels[check.OwnerUIDLabel] == string(p.obj.GetUID()) {
		return "", "", nil // this parent's, its operator label taken off: claimed back
	}
	return ReasonChildExists, fmt.Sprintf("%s %s exists and was not made by operator %s (no label %s=%s); not taken over: delete it, or label it %s=%s to let the operator adopt it",
		child.GetKind(), objectKey(child), c.op.Name, check.OperatorLabel, c.op.Name, check.OperatorLabel, c.op.Name), nil
}

// objectKey is the informer cache key of a (checked) child.
func objectKey(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return ns + "/" + o.GetName()
	}
	return o.GetName()
}
