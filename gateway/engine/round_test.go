package engine

import (
	"testing"
	"time"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// Once a round ends or is dropped, a retry record of a call no longer owed
// goes, as a success would end it: an update's whose change was taken back
// would count the object failing for good. What is still owed keeps its
// backoff and count: an update round still to come (after a resume round),
// a callback owed the essence now, a requeue, a sync; and a permanent
// failure at the essence now keeps the object failing until it changes.
func TestAnEndedRoundLeavesOnlyTheRecordsOfCallsStillOwed(t *testing.T) {
	const handled, now = "h1", "h1"
	for _, tt := range []struct {
		name     string
		event    spec.Event
		failedAt string // permanently, at this essence
		handled  string // the handled essence (the essence now is h1)
		behind   bool
		requeue  bool
		wantKept bool
	}{
		{"an update whose change was taken back", spec.EventUpdate, "", handled, false, false, false},
		{"an update failed permanently at a change taken back", spec.EventUpdate, "d2", handled, false, false, false},
		{"an update failed permanently at the essence now", spec.EventUpdate, now, handled, false, false, true},
		{"an update whose round is still to come", spec.EventUpdate, "", "h0", false, false, true},
		{"an update owed the essence now", spec.EventUpdate, "", handled, true, false, true},
		{"a requeued update", spec.EventUpdate, "", handled, false, true, true},
		{"a resume whose round ended", spec.EventResume, "", handled, false, false, false},
		{"a sync's, which comes again by itself", spec.EventSync, "", handled, false, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pr := &state.Progress{Event: string(tt.event), Attempts: 2, Digest: "d2"}
			if tt.failedAt != "" {
				pr.Failed, pr.Digest = true, tt.failedAt
			}
			st := &state.State{Handled: tt.handled, Progress: map[string]*state.Progress{"main": pr}}
			if tt.behind {
				st.Behind = []*state.Seen{{IDs: []string{"main"}, Digest: "d2"}}
			}
			p := &pass{st: st, mem: &objectMemory{}, plan: decide.Plan{EssenceDigest: now}}
			if tt.requeue {
				p.mem.Requeue = map[decide.RequeueKey]time.Time{{Callback: "main", Event: tt.event}: {}}
			}
			endUnowedRecords(everyEvent("main"), p)
			if kept := st.Progress["main"] != nil; kept != tt.wantKept {
				t.Errorf("record kept = %v, want %v", kept, tt.wantKept)
			}
		})
	}
}
