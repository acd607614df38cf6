package engine

import (
	"testing"
	"time"
)

// A pass waits for a child's cache to catch up with its apply, but not for
// a watch that never does: after childCacheWaitMax it goes on, and a
// cache that caught up starts the next wait afresh.
func TestPassWaitsForItsChildrensCachesOnlySoLong(t *testing.T) {
	m := &objectMemory{}
	start := time.Unix(1000, 0)
	for _, st := range []struct {
		name     string
		after    time.Duration
		behind   bool
		wantWait bool
	}{
		{"behind", 0, true, true},
		{"still behind", childCacheWaitMax - time.Millisecond, true, true},
		{"behind too long", childCacheWaitMax, true, false},
		{"caught up", childCacheWaitMax + time.Second, false, false},
		{"behind again", childCacheWaitMax + 2*time.Second, true, true},
	} {
		if got := m.waitForChildren(st.behind, start.Add(st.after)); got != st.wantWait {
			t.Errorf("%s: wait = %v, want %v", st.name, got, st.wantWait)
		}
	}
}
