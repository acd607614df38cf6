package engine

import (
	"context"
	"fmt"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
)

// writeAnswer applies an answer's children (and, for a sync that lists
// them all, prunes the rest) and writes its status. The two go to
// different objects and neither reads what the other writes, so both are
// sent at once: the worker holds the object for one round trip, not two.
// The state that marks the change handled is written by the caller, after
// both succeeded. Sequential when only one of them has anything to write,
// or when the status is only kept for the pass's end (keepsConditions).
func (c *Controller) writeAnswer(ctx context.Context, p *pass, w decide.Work, desired []*unstructured.Unstructured, prune bool, status map[string]any) error {
	children := func(p *pass) error {
		if err := c.applyChildren(ctx, p, desired); err != nil {
			return err
		}
		if prune {
			return c.pruneChildren(ctx, p, desired)
		}
		return nil
	}
	if status == nil || len(desired) == 0 && !prune || c.keepsConditions(p) {
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
	cp := *p
	statusDone := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				statusDone <- failure.Temporaryf("ApplyFailed", "panic writing the status: %v\n%s", r, debug.Stack())
			}
		}()
		statusDone <- c.writeStatus(ctx, p, w, status)
	}()
	childErr := children(&cp)
	statusErr := <-statusDone
	p.children = cp.children
	switch {
	case childErr != nil && statusErr != nil:
		return fmt.Errorf("%w (the status was not written either: %v)", childErr, statusErr)
	case childErr != nil:
		return childErr
	default:
		return statusErr
	}
}
