package engine

// A pass that fails waits in the work queue's per-object backoff (5 ms
// doubling, up to 1000 s): after half a minute of an API server outage, a
// pass failing all along would next run about as long after the API
// server was back. The passes that failed for want of the API server are
// noted, and run again at once when every informer of the controller
// lists and watches again, their backoff reset.

// noteStalled notes that key's pass failed to reach the API server.
func (c *Controller) noteStalled(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stalled == nil {
		c.stalled = map[string]bool{}
	}
	c.stalled[key] = true
}

// onHealthChange is watchHealth's hook: once no informer fails, the
// stalled passes run again.
func (c *Controller) onHealthChange() {
	c.notifyChanged()
	if _, _, failing := c.health.failing(); failing {
		return
	}
	c.mu.Lock()
	keys := c.stalled
	c.stalled = nil
	c.mu.Unlock()
	for key := range keys {
		c.queue.Forget(key)
		c.queue.Add(key)
	}
}
