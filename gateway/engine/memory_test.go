package engine

import (
	"testing"
	"time"
)

// An object deleted and re-created under the same name is another object:
// nothing the gateway remembered of the old one may apply to it (the
// stale-cache guard in particular would compare resourceVersions of two
// different objects).
func TestMemoryBelongsToTheObjectNotItsName(t *testing.T) {
	c := &Controller{memory: map[string]*objectMemory{}}
	old := c.memoryOf("ns/example", "uid-1")
	old.writtenRV, old.Seen = 100, true
	old.TimerNext = map[string]time.Time{"tick": time.Now().Add(time.Hour)}

	if again := c.memoryOf("ns/example", "uid-1"); again != old {
		t.Fatal("the same object got a fresh memory")
	}
	fresh := c.memoryOf("ns/example", "uid-2")
	if fresh == old || fresh.writtenRV != 0 || fresh.Seen || fresh.TimerNext != nil {
		t.Errorf("re-created object inherited %+v", fresh)
	}
	if len(c.memory) != 1 {
		t.Errorf("%d memories kept for one name, want the old one dropped", len(c.memory))
	}
}
