package main

import (
	"context"
	"fmt"
)

// warmUpNamespace holds the warm-up's objects; no system is measured in it.
const warmUpNamespace = "warm-up"

// warmUp runs the raw program through a create, update and delete of
// opts.WarmUp objects before anything is measured, and waits until the
// garbage collector took their children. On a fresh control plane the
// first phase of a run was the slowest of the run for whichever system
// went first (kube-apiserver's caches, heap and connections, the garbage
// collector's informers): with the gateway first, its backlog create ran at
// 0.50× the raw program's, against 0.91× second. Every run now starts on a
// fresh control plane, so every run would carry that handicap.
func (h *harness) warmUp(ctx context.Context, e env, tune tuning) error {
	if h.opts.WarmUp == 0 {
		return nil
	}
	w, err := h.trackedWorkload(ctx, warmUpNamespace, h.opts.WarmUp)
	if err != nil {
		return err
	}
	defer w.track.stop()
	e.profile = false // nothing of it is measured
	sys := &rawSystem{env: e}
	defer sys.stop()
	if err := sys.start(ctx, warmUpNamespace, tune); err != nil {
		return err
	}
	h.log.Info("warm-up", "n", w.n)
	steps := []struct {
		name  string
		size  int64
		write func(context.Context) error
	}{
		{evCreate, 1, w.createAll},
		{evUpdate, 3, func(ctx context.Context) error { return w.resizeAll(ctx, 3) }},
		{evDelete, 0, w.deleteAll},
	}
	for _, s := range steps {
		if err := s.write(ctx); err != nil {
			return fmt.Errorf("warm-up %s: %w", s.name, err)
		}
		if _, err := await(ctx, h.opts.Timeout, "warm-up "+s.name, func() (bool, string) {
			return w.track.converged(w.n, s.size)
		}); err != nil {
			return err
		}
	}
	sys.stop()
	return h.childrenCollected(ctx, warmUpNamespace, w)
}
