package engine

import (
	"context"
	"fmt"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
)

// writeAnswer applies an answer's children (and, given want, the desired
// set of the pass's sync answers, prunes the rest) and writes its status.
// The two go to different objects and neither reads what the other
// writes, so both are sent at once: the worker holds the object for one
// round trip, not two. The state that marks the change handled is written
// by the caller, after both succeeded. Sequential when only one of them
// has anything to write, or when the status is only kept for the pass's
// end (keepsConditions).
func (c *Controller) writeAnswer(ctx context.Context, p *pass, w decide.Work, desired []*unstructured.Unstructured, want map[string]bool, status map[string]any) error {
	children := func(p *pass) error {
		if err := c.applyChildren(ctx, p, desired); err != nil {
			return err
		}
		if want != nil {
			return c.pruneChildren(ctx, p, want)
		}
		return nil
	}
	if status == nil || len(desired) == 0 && want == nil || c.keepsConditions(p) {
		if err := children(p); err != nil {
			return err
		}
		if status == nil {
			return nil
		}
		return c.writeStatus(ctx, p, w, status)
	}
	// The children's writes work on a copy of the pass: the status write
	// replaces p.obj meanwhile, and they read the parent as it was (its
	// identity and namespace, which that write does not change). The two
	// share p.mem, where they touch different fields (applied, writtenRV).
	if p.children == nil {
		p.children = map[string]map[string]childObject{}
	}
	before, _ := p.obj.Object["status"].(map[string]any)
	cp := *p
	statusDone := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("panic writing the status", "object", p.key, "panic", r, "stack", string(debug.Stack()))
				statusDone <- failure.Temporaryf("ApplyFailed", "internal error writing the status: %v", r)
			}
		}()
		statusDone <- c.writeStatus(ctx, p, w, status)
	}()
	var childErr, statusErr error
	func() {
		// Nothing may touch p until the status write is over, even when
		// the children's side panics (reconcileSafely recovers it).
		defer func() { statusErr = <-statusDone }()
		childErr = children(&cp)
	}()
	p.children = cp.children
	p.foreign = p.foreign || cp.foreign
	switch {
	case childErr != nil && statusErr != nil:
		return fmt.Errorf("%w (the status was not written either: %w)", childErr, statusErr)
	case childErr != nil:
		// Written one after the other, a refused child kept the status
		// from being written; it usually claims what the children are.
		// So it goes back to what it was, in the pass's copy too when a
		// later step reads it (the write above adopted the whole object).
		if err := c.patchStatus(ctx, p, undoMergePatch(before, status), c.statusReadLater(p, w)); err != nil {
			return fmt.Errorf("%w (and the status written with it could not be set back: %w)", childErr, err)
		}
		return childErr
	default:
		return statusErr
	}
}

// undoMergePatch is the merge patch that sets back, on a status that was
// before and then had patch merged into it, every field patch touched.
func undoMergePatch(before, patch map[string]any) map[string]any {
	out := make(map[string]any, len(patch))
	for k, v := range patch {
		old, had := before[k]
		pm, patchedMap := v.(map[string]any)
		om, wasMap := old.(map[string]any)
		switch {
		case patchedMap && wasMap:
			out[k] = undoMergePatch(om, pm)
		case had:
			out[k] = old
		default:
			out[k] = nil // added by patch: removed
		}
	}
	return out
}
