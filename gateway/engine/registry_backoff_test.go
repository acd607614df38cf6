package engine

import (
	"testing"
	"time"
)

// A WebhookOperator whose sync keeps failing (the gateway may not patch
// it, say) is retried at least once a minute however long it failed: once
// someone fixes the cause, the registry takes it on within a minute, not
// after the work queue's default 1000 s, and /readyz follows.
func TestRegistryRetriesAFailingWebhookOperatorAtLeastEveryMinute(t *testing.T) {
	limiter := registryRateLimiter()
	if first := limiter.When("memcached"); first > 10*time.Millisecond {
		t.Errorf("first retry after %v, want at most 10ms", first)
	}
	var last time.Duration
	for range 40 {
		last = limiter.When("memcached")
	}
	if last > time.Minute || last < 30*time.Second {
		t.Errorf("retry after 40 failures waits %v, want between 30s and 1m", last)
	}
	limiter.Forget("memcached")
	if again := limiter.When("memcached"); again > 10*time.Millisecond {
		t.Errorf("after Forget the next retry waits %v, want at most 10ms", again)
	}
}
