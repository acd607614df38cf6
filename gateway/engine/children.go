package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// applyChildren server-side applies the checked children, keeping the
// pass's view of observed children current so the sync digest taken after
// this pass already includes them.
func (c *Controller) applyChildren(ctx context.Context, p *pass, desired []*unstructured.Unstructured) error {
	desired, err := c.refuseMissingChildren(p, desired)
	if err != nil {
		return err
	}
	for _, child := range desired {
		check.Decorate(child, p.obj, c.op.Name)
		key := kindKey(child.GetAPIVersion(), child.GetKind())
		decl, _ := c.childSpec(child)
		existing := p.children[key][nameIn(child, p.obj)]
		applied := key + "|" + nameIn(child, p.obj)
		body, sum, fresh := p.mem.unchangedChild(applied, child, existing)
		if fresh {
			continue // applied already, and nobody touched it since
		}
		out, err := c.applyChild(ctx, p, child, body, decl.spec.UpdateStrategy, existing)
		c.countApply("child", err)
		if err != nil {
			p.mem.applied.forget(applied)
			if p.obj.GetDeletionTimestamp() == nil || !apply.NamespaceTerminating(err) && !apply.NamespaceMissing(err) {
				return err
			}
			// Its namespace is being deleted, or is gone: failing the
			// delete callback for a child that cannot be made would hold
			// the parent (and a namespace being deleted around it) until
			// someone creates the namespace again.
			c.log.Info("child not created: its namespace is being deleted or does not exist", "object", p.key, "child", applied, "error", err)
			continue
		}
		if existing != nil && c.op.HasEvent(spec.EventSync) && !p.foreign {
			p.foreign = c.childChangedBeyond(existing, out, child)
		}
		p.mem.rememberApplied(applied, sum, out.GetResourceVersion())
		if p.children == nil {
			p.children = children{}
		}
		if p.children[key] == nil {
			p.children[key] = map[string]childObject{}
		}
		p.children[key][nameIn(out, p.obj)] = out
	}
	return nil
}

// refuseMissingChildren fails, before any child is applied, an answer
// with a child of a kind the controller runs without (missingChild). While
// the parent is being deleted such a child is left out instead, as one
// whose namespace is gone: its kind has no CRD, and failing the delete
// callback for it would hold the parent until someone installs one. It
// returns the children to apply.
func (c *Controller) refuseMissingChildren(p *pass, desired []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	if len(c.missing) == 0 {
		return desired, nil
	}
	out := make([]*unstructured.Unstructured, 0, len(desired))
	for _, child := range desired {
		err := c.missingChild(child)
		switch {
		case err == nil:
			out = append(out, child)
		case p.obj.GetDeletionTimestamp() == nil:
			return nil, err
		default:
			c.log.Info("child not created: its kind is not served", "object", p.key, "child", child.GetKind()+" "+child.GetName(), "error", err)
		}
	}
	return out, nil
}

// childChangedBeyond says whether out, what applying child answered,
// shows a change of existing, the child as the pass's handler saw it, that
// the apply did not make (foreign.go).
func (c *Controller) childChangedBeyond(existing, out childObject, child *unstructured.Unstructured) bool {
	after, ok := out.(*unstructured.Unstructured)
	if !ok || out == existing {
		return false // kept as it was (OnDelete)
	}
	before, err := wholeChild(existing)
	if err != nil {
		return true // unreadable: call sync again rather than miss a change
	}
	return changedBeyond(before, after, child.Object, false)
}

// applyChild applies one child and returns what the pass keeps of it: the
// server's object, or, when no later step of the pass reads children
// (written.go), the applied content with the metadata the server answered.
// An existing child with update strategy OnDelete is kept as it is. body
// is child's JSON (nil: not made yet).
func (c *Controller) applyChild(ctx context.Context, p *pass, child *unstructured.Unstructured, body []byte, strategy spec.UpdateStrategy, existing childObject) (childObject, error) {
	if strategy == spec.UpdateOnDelete && existing != nil {
		// Changes take effect only once someone deletes it. The cached
		// child is shared with the cache; nothing changes it in place.
		return existing, nil
	}
	var prev *unstructured.Unstructured // what Recreate reads: the UID
	if existing != nil {
		prev = metaOnly(existing)
	} else if strategy == spec.UpdateRecreate {
		// Not this parent's yet: a predecessor's or nobody's, which the
		// answer adopts (refuseForeignChildren let it through), and which
		// Recreate replaces as it would one of its own.
		if ch, ok := c.childSpec(child); ok {
			if cached, ok := ch.getChild(objectKey(child)); ok {
				prev = metaOnly(cached)
			}
		}
	}
	if c.childrenReadLater(p) {
		out, err := c.applier.ApplyChild(ctx, child, strategy, prev)
		if err != nil {
			return nil, err
		}
		unstructured.RemoveNestedField(out.Object, "metadata", "managedFields") // as in the cache
		return out, nil
	}
	m, err := c.applier.ApplyChildMeta(ctx, child, body, strategy, prev)
	if err != nil {
		return nil, err
	}
	return apply.WithMeta(child, m), nil
}

func (c *Controller) childSpec(child *unstructured.Unstructured) (childKind, bool) {
	return c.childKindOf(child.GroupVersionKind().GroupKind())
}

// childKindOf is the declared child kind of group and kind gk.
func (c *Controller) childKindOf(gk schema.GroupKind) (childKind, bool) {
	for _, ch := range c.children {
		if ch.mapping.GroupVersionKind.GroupKind() == gk {
			return ch, true
		}
	}
	return childKind{}, false
}

// syncAnswers gathers what a pass's sync callbacks answered of the
// children: with several, each may answer its own, and only all their
// answers together are the desired set.
type syncAnswers struct {
	answered []string        // the sync callbacks that answered a children key
	want     map[string]bool // childKeys of what they answered
	ended    []string        // the sync callbacks whose calls ended: answer applied or failure recorded
	// before: the sync digest before the sync call alone (not of a full
	// pass) now running, so that it takes in its own writes only.
	before string
}

// endedAll reports whether every sync call of work ended in the pass.
func (s *syncAnswers) endedAll(work []decide.Work) bool {
	for _, w := range work {
		if w.Event == spec.EventSync && !slices.Contains(s.ended, w.Callback.ID) {
			return false
		}
	}
	return true
}

// wanted is the desired set should the sync callback id answer keys: nil
// (prune nothing) unless every other callback of required has answered a
// children key in the pass, or the set otherwise. A sync callback that
// failed, was not called or answered without the key leaves it nil: what
// it wants is unknown, and pruning would delete it.
func (s *syncAnswers) wanted(id string, keys map[string]bool, required []string) map[string]bool {
	for _, r := range required {
		if r != id && !slices.Contains(s.answered, r) {
			return nil
		}
	}
	want := make(map[string]bool, len(s.want)+len(keys))
	maps.Copy(want, s.want)
	maps.Copy(want, keys)
	return want
}

// add records that the sync callback id answered keys.
func (s *syncAnswers) add(id string, keys map[string]bool) {
	s.answered = append(s.answered, id)
	if s.want == nil {
		s.want = map[string]bool{}
	}
	maps.Copy(s.want, keys)
}

// childKeys names the children desired of parent as pruneChildren
// compares them: kind and name.
func childKeys(parent *unstructured.Unstructured, desired []*unstructured.Unstructured) map[string]bool {
	keys := make(map[string]bool, len(desired))
	for _, d := range desired {
		keys[kindKey(d.GetAPIVersion(), d.GetKind())+"|"+nameIn(d, parent)] = true
	}
	return keys
}

// pruneChildren deletes owned children of declared kinds missing from
// want, the pass's sync answers' full desired set (syncAnswers).
func (c *Controller) pruneChildren(ctx context.Context, p *pass, want map[string]bool) error {
	for key, byName := range p.children {
		for name, obj := range byName {
			if want[key+"|"+name] || obj.GetDeletionTimestamp() != nil {
				continue
			}
			err := c.applier.DeleteChild(ctx, metaOnly(obj))
			c.countApply("prune", err)
			if err != nil {
				return err
			}
			delete(byName, name)
			p.mem.applied.forget(key + "|" + name)
		}
	}
	return nil
}

// checkStatus merges the patch over the current status and checks it
// against the CRD's schema; fields the schema would prune are reported.
func (c *Controller) checkStatus(p *pass, patch map[string]any) (map[string]any, error) {
	// Read in place: Check copies what it merges.
	current, _ := p.obj.Object["status"].(map[string]any)
	if c.statusless && len(patch) > 0 {
		return nil, c.noStatusError()
	}
	patch = keepingReconciled(current, patch)
	checker := c.status.current()
	if checker == nil {
		return patch, nil
	}
	merged, pruned, err := checker.Check(current, patch)
	if err != nil {
		return nil, err
	}
	if len(pruned) > 0 {
		c.warn(p.obj, "StatusFieldsPruned", fmt.Sprintf("the CRD's schema has no place for %v: the API server would drop them; add them to the schema or stop sending them", pruned))
	}
	if check.EqualJSON(current, merged) {
		return nil, nil // nothing would change: no write
	}
	return patch, nil
}

// noStatusError refuses a status for a built-in kind without the status
// subresource: it keeps none, so no write of it could ever succeed.
func (c *Controller) noStatusError() error {
	m := c.parent.mapping
	return check.NoStatusError(m.GroupVersionKind.Kind, fmt.Sprintf("the API server's discovery lists no %s/status", m.Resource.Resource))
}

// writeStatus merge-patches the status and adopts the result.
func (c *Controller) writeStatus(ctx context.Context, p *pass, w decide.Work, patch map[string]any) error {
	if c.keepsConditions(p) {
		return c.deferStatus(p, patch) // written once, at the pass's end
	}
	return c.patchStatus(ctx, p, patch, c.statusReadLater(p, w))
}

// patchStatus merge-patches the status and adopts the result: only its
// metadata unless readLater (a later step of the pass reads the status).
func (c *Controller) patchStatus(ctx context.Context, p *pass, patch map[string]any, readLater bool) error {
	checker := c.status.current()
	subresource := checker == nil || checker.HasStatusSubresource()
	// A conflict over a state another writer recorded since the pass read
	// it drops the write: that writer's status is the newer.
	read := &apply.StateRead{Key: c.stateAnnotation(), Value: p.stateRaw}
	if !readLater {
		m, err := c.applier.PatchStatusMeta(ctx, p.obj, patch, subresource, read)
		c.countApply("status", err)
		if err != nil {
			return err
		}
		c.adoptMeta(p, m)
		return nil
	}
	out, err := c.applier.PatchStatus(ctx, p.obj, patch, subresource, read)
	c.countApply("status", err)
	if err != nil {
		return err
	}
	if out == nil {
		return failure.Temporaryf("ApplyFailed", "status patch returned no object")
	}
	if c.op.HasEvent(spec.EventSync) && !p.foreign {
		p.foreign = changedBeyond(p.obj, out, map[string]any{"status": patch}, true)
	}
	c.adopt(p, out)
	return nil
}
