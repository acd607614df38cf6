package engine

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
)

// The sync digest and resync clock move only once every sync callback of
// a pass due for a change or resyncPeriod ended (succeeded, or failed with
// a retry of its own): a pass cut short after one of two (budget spent)
// must leave the change due for the other, and a call alone for its requeueAfter or retry must not put off
// the others' resync. Such a call still takes in its own writes.
func TestSyncDigestAndClockMoveOnlyOnceEveryDueSyncCallbackEnded(t *testing.T) {
	old := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := old.Add(time.Hour)
	syncWork := func(ids ...string) []decide.Work {
		var out []decide.Work
		for _, id := range ids {
			out = append(out, decide.Work{Callback: spec.Callback{ID: id}, Event: spec.EventSync})
		}
		return out
	}
	tests := []struct {
		name       string
		full       bool
		work       []decide.Work
		succeeded  []string
		failed     []string
		wantDigest bool // the digest now, not the old one
		wantClock  bool // SyncedAt now, not the old time
	}{
		{"one of two in a full pass (the other cut short)", true, syncWork("a", "b"), []string{"a"}, nil, false, false},
		{"both of two in a full pass", true, syncWork("a", "b"), []string{"a", "b"}, nil, true, true},
		{"one of two failed in a full pass (its retry calls it alone)", true, syncWork("a", "b"), []string{"a"}, []string{"b"}, true, true},
		{"the only one due in a full pass (the other backing off)", true, syncWork("a"), []string{"a"}, nil, true, true},
		{"a requeued call alone", false, syncWork("a"), []string{"a"}, nil, true, false},
		{"a retry alone failing again", false, syncWork("a"), nil, []string{"a"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "example.com/v1", "kind": "Widget",
				"metadata": map[string]any{"name": "w", "namespace": "ns"},
			}}
			mem := &objectMemory{}
			mem.SyncDigest, mem.SyncedAt = "old", old
			p := &pass{obj: obj, mem: mem, now: now, plan: decide.Plan{FullSync: tt.full, Work: tt.work}}
			for _, id := range tt.succeeded {
				recordSynced(p, id, true)
			}
			for _, id := range tt.failed {
				recordSynced(p, id, false)
			}
			if got := mem.SyncDigest != "old"; got != tt.wantDigest {
				t.Errorf("sync digest recorded: %v, want %v", got, tt.wantDigest)
			}
			if got := mem.SyncedAt.Equal(now); got != tt.wantClock {
				t.Errorf("resync clock moved: %v, want %v", got, tt.wantClock)
			}
		})
	}
}
