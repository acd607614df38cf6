package engine

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// The sync digest and resync clock move only once every sync callback of
// a pass due for a change or resyncPeriod ended (succeeded, or failed with
// a retry of its own): a pass cut short after one of two (budget spent)
// must leave the change due for the other, and a call alone for its
// requeueAfter or retry must not put off the others' resync. Such a call,
// succeeded or failed (an error's status), takes in its own writes, and
// only them: a write earlier in its pass (an update callback's status) is
// a change the other sync callbacks are owed.
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
		ended      []string // succeeded, or failed with their retry records
		before     string   // the digest before a call alone
		foreign    bool
		wantDigest bool // the digest now, not the old one
		wantClock  bool // SyncedAt now, not the old time
	}{
		{"one of two in a full pass (the other cut short)", true, syncWork("a", "b"), []string{"a"}, "", false, false, false},
		{"both of two in a full pass, or one failed (its retry calls it alone)", true, syncWork("a", "b"), []string{"a", "b"}, "", false, true, true},
		{"the only one due in a full pass (the other backing off)", true, syncWork("a"), []string{"a"}, "", false, true, true},
		{"a call alone, requeued or a retry, nothing written before it", false, syncWork("a"), []string{"a"}, "old", false, true, false},
		{"a call alone after another call's write in its pass", false, syncWork("a"), []string{"a"}, "after the update's status", false, false, false},
		{"a call alone whose write answered someone else's change", false, syncWork("a"), []string{"a"}, "old", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "example.com/v1", "kind": "Widget",
				"metadata": map[string]any{"name": "w", "namespace": "ns"},
			}}
			mem := &objectMemory{}
			mem.SyncDigest, mem.SyncedAt = "old", old
			p := &pass{obj: obj, mem: mem, now: now, plan: decide.Plan{FullSync: tt.full, Work: tt.work}, foreign: tt.foreign, seenDigest: "old"}
			p.sync.before = tt.before
			for _, id := range tt.ended {
				recordSynced(p, id)
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

// A full pass cut short after sync callback a and before b (its budget
// spent) leaves the digest as it was, so the next pass is full again; the
// look-ahead that schedules it must see that too and wake at once, not at
// the resync an hour on. Once both ended, the next pass is the resync.
// (Found by review rv42: the look-ahead took the recorded digest for the
// object's.)
func TestAPassCutShortBeforeEverySyncCallEndedWakesForTheRest(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	op := &spec.WebhookOperator{Spec: spec.OperatorSpec{
		ResyncPeriod: &spec.Duration{Duration: time.Hour},
		Callbacks: []spec.Callback{
			{ID: "a", Events: []spec.Event{spec.EventSync}},
			{ID: "b", Events: []spec.Event{spec.EventSync}},
		},
	}}
	for _, tt := range []struct {
		name       string
		ended      []string
		wantPrompt bool
	}{
		{"a ended, b cut off", []string{"a"}, true},
		{"both ended", []string{"a", "b"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "example.com/v1", "kind": "Widget",
				"metadata": map[string]any{"name": "w", "namespace": "ns", "uid": "u1"},
				"spec":     map[string]any{"size": int64(1)},
			}}
			st := &state.State{UID: "u1"}
			if err := st.SetHandled(essence.Of(obj), state.DefaultEssenceCap); err != nil {
				t.Fatal(err)
			}
			mem := &objectMemory{}
			mem.Seen = true
			mem.SyncDigest, mem.SyncedAt = "before a child changed", now.Add(-time.Minute)
			c := &Controller{op: op}
			c.Clock = func() time.Time { return now }
			// A child changed: the pass's digest differs, both sync calls are due.
			p := &pass{obj: obj, mem: mem, now: now, st: st, seenDigest: syncDigest(obj, nil, nil)}
			p.plan = decide.Decide(decide.Input{Operator: op, Object: obj, State: st, Memory: &mem.Memory,
				SyncDigest: p.seenDigest, Now: now})
			if !p.plan.FullSync || len(p.plan.Work) != 2 {
				t.Fatalf("setup: plan %+v", p.plan)
			}
			for _, id := range tt.ended {
				recordSynced(p, id)
			}
			d := c.nextWake(p)
			if prompt := d <= time.Second; prompt != tt.wantPrompt {
				t.Errorf("next pass in %s, want prompt: %v (the resync is an hour on)", d, tt.wantPrompt)
			}
		})
	}
}
