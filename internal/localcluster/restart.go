package localcluster

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// component is how a component was started: StartComponent starts it again
// the same way and waits for the same readiness.
type component struct {
	args  []string
	what  string
	ready condition
}

// StopComponent stops one component, to test what happens around it while
// it is down: with kill, at once by SIGKILL (a crash); otherwise by SIGTERM
// and, after the grace period, SIGKILL. The other components keep running.
// Nothing but StartComponent and Stop may run on the cluster concurrently.
func (c *Cluster) StopComponent(name string, kill bool) error {
	p, err := c.running(name)
	if err != nil {
		return err
	}
	if c.stopped == nil {
		c.stopped = map[string]bool{}
	}
	c.stopped[name] = true
	if kill {
		_ = p.proc.Signal(syscall.SIGKILL)
		if !p.waitExit(5 * time.Second) {
			return fmt.Errorf("localcluster: %s (pid %d) still running after SIGKILL", name, p.pid)
		}
	}
	if err := p.stop(c.cfg.StopGracePeriod); err != nil {
		return fmt.Errorf("localcluster: stop %s: %w", name, err)
	}
	c.cfg.Logger.Info("stopped", "component", name, "killed", kill)
	return nil
}

// StartComponent starts a component StopComponent stopped, with the same
// command line, and waits until it is ready as Start does (etcd's /health,
// the API server's /readyz, ...), within ctx.
func (c *Cluster) StartComponent(ctx context.Context, name string) error {
	comp, known := c.components[name]
	if !known {
		return fmt.Errorf("localcluster: no component %q (want one of %v)", name, c.names())
	}
	if !c.stopped[name] {
		return fmt.Errorf("localcluster: %s is running: stop it first", name)
	}
	p, err := startProcess(c.cfg, name, comp.args)
	if err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	i := slices.IndexFunc(c.procs, func(q *process) bool { return q.name == name })
	c.procs[i] = p
	delete(c.stopped, name)
	if err := c.waitFor(ctx, p, comp.what, comp.ready); err != nil {
		return fmt.Errorf("localcluster: restart %s: %w", name, err)
	}
	return nil
}

// running is the live process of a component that was started and is not
// stopped.
func (c *Cluster) running(name string) (*process, error) {
	if _, known := c.components[name]; !known {
		return nil, fmt.Errorf("localcluster: no component %q (want one of %v)", name, c.names())
	}
	if c.stopped[name] {
		return nil, fmt.Errorf("localcluster: %s is already stopped", name)
	}
	return c.process(name), nil
}

func (c *Cluster) names() []string {
	names := make([]string, 0, len(c.procs))
	for _, p := range c.procs {
		names = append(names, p.name)
	}
	return names
}
