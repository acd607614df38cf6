package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
	for _, child := range desired {
		check.Decorate(child, p.obj, c.op.Name)
		key := kindKey(child.GetAPIVersion(), child.GetKind())
		decl, _ := c.childSpec(child)
		existing := p.children[key][nameIn(child, p.obj)]
		applied := key + "|" + nameIn(child, p.obj)
		sum, fresh := p.mem.unchangedChild(applied, child, existing)
		if fresh {
			continue // applied already, and nobody touched it since
		}
		out, err := c.applyChild(ctx, p, child, decl.spec.UpdateStrategy, existing)
		c.countApply("child", err)
		if err != nil {
			delete(p.mem.applied, applied)
			return err
		}
		p.mem.rememberApplied(applied, sum, out.GetResourceVersion())
		if p.children == nil {
			p.children = map[string]map[string]*unstructured.Unstructured{}
		}
		if p.children[key] == nil {
			p.children[key] = map[string]*unstructured.Unstructured{}
		}
		p.children[key][nameIn(out, p.obj)] = out
	}
	return nil
}

// applyChild applies one child and returns what the pass keeps of it: the
// server's object, or, when no later step of the pass reads children
// (written.go), the applied content with the metadata the server answered.
func (c *Controller) applyChild(ctx context.Context, p *pass, child *unstructured.Unstructured, strategy spec.UpdateStrategy, existing *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	if c.childrenReadLater(p) || strategy == spec.UpdateOnDelete && existing != nil {
		out, err := c.applier.ApplyChild(ctx, child, strategy, existing)
		if err != nil {
			return nil, err
		}
		unstructured.RemoveNestedField(out.Object, "metadata", "managedFields") // as in the cache
		return out, nil
	}
	m, err := c.applier.ApplyChildMeta(ctx, child, strategy, existing)
	if err != nil {
		return nil, err
	}
	return apply.WithMeta(child, m), nil
}

func (c *Controller) childSpec(child *unstructured.Unstructured) (childKind, bool) {
	gk := child.GroupVersionKind().GroupKind()
	for _, ch := range c.children {
		if ch.mapping.GroupVersionKind.GroupKind() == gk {
			return ch, true
		}
	}
	return childKind{}, false
}

// pruneChildren deletes owned children of declared kinds missing from a
// sync response's full desired set.
func (c *Controller) pruneChildren(ctx context.Context, p *pass, desired []*unstructured.Unstructured) error {
	want := map[string]bool{}
	for _, d := range desired {
		want[kindKey(d.GetAPIVersion(), d.GetKind())+"|"+nameIn(d, p.obj)] = true
	}
	for key, byName := range p.children {
		for name, obj := range byName {
			if want[key+"|"+name] || obj.GetDeletionTimestamp() != nil {
				continue
			}
			err := c.applier.DeleteChild(ctx, obj)
			c.countApply("prune", err)
			if err != nil {
				return err
			}
			delete(byName, name)
			delete(p.mem.applied, key+"|"+name)
		}
	}
	return nil
}

// checkStatus merges the patch over the current status and checks it
// against the CRD's schema; fields the schema would prune are reported.
func (c *Controller) checkStatus(p *pass, patch map[string]any) (map[string]any, error) {
	current, _, _ := unstructured.NestedMap(p.obj.Object, "status")
	if c.status == nil {
		return patch, nil
	}
	merged, pruned, err := c.status.Check(current, patch)
	if err != nil {
		return nil, err
	}
	if len(pruned) > 0 {
		c.warn(p.obj, "StatusFieldsPruned", fmt.Sprintf("the CRD's schema has no place for %v: the API server would drop them; add them to the schema or stop sending them", pruned))
	}
	if reflect.DeepEqual(normalize(current), normalize(merged)) {
		return nil, nil // nothing would change: no write
	}
	return patch, nil
}

// writeStatus merge-patches the status and adopts the result.
func (c *Controller) writeStatus(ctx context.Context, p *pass, w decide.Work, patch map[string]any) error {
	if c.keepsConditions(p) {
		return c.deferStatus(p, patch) // written once, at the pass's end
	}
	subresource := c.status == nil || c.status.HasStatusSubresource()
	if !c.statusReadLater(p, w) {
		m, err := c.applier.PatchStatusMeta(ctx, p.obj, patch, subresource)
		c.countApply("status", err)
		if err != nil {
			return err
		}
		c.adoptMeta(p, m)
		return nil
	}
	out, err := c.applier.PatchStatus(ctx, p.obj, patch, subresource)
	c.countApply("status", err)
	if err != nil {
		return err
	}
	if out == nil {
		return failure.Temporaryf("ApplyFailed", "status patch returned no object")
	}
	c.adopt(p, out)
	return nil
}

// appliedChild is what the gateway last applied for one child: the digest
// of the applied content and the resourceVersion the API server answered.
type appliedChild struct {
	digest          string
	resourceVersion string
}

// unchangedChild says whether child need not be applied: the same content
// was applied before and the cached child still has the resourceVersion
// that apply produced, so nobody (a user, another controller) changed or
// deleted it since. A cache that has not caught up with the apply yet
// differs too and the child is applied again: cautious, never wrong. sum
// is the content's digest, to remember after applying.
func (m *objectMemory) unchangedChild(key string, child, existing *unstructured.Unstructured) (sum string, fresh bool) {
	raw, err := json.Marshal(child.Object)
	if err != nil {
		return "", false
	}
	h := sha256.Sum256(raw)
	sum = hex.EncodeToString(h[:])
	prev, ok := m.applied[key]
	return sum, ok && existing != nil && prev.digest == sum && existing.GetResourceVersion() == prev.resourceVersion
}

func (m *objectMemory) rememberApplied(key, sum, resourceVersion string) {
	if sum == "" {
		return
	}
	if m.applied == nil {
		m.applied = map[string]appliedChild{}
	}
	m.applied[key] = appliedChild{digest: sum, resourceVersion: resourceVersion}
}
