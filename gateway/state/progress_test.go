package state

import (
	"strings"
	"testing"
)

// A callback keeps one retry record per event whose call failed: each has
// its own attempts and failure, under the callback's id (the first) and in
// its Others, through the annotation and back; ending one leaves the
// others.
func TestEachEventOfACallbackKeepsItsOwnRecord(t *testing.T) {
	st := &State{}
	st.ProgressOf("main", "update").Attempts = 3
	sync := st.ProgressOf("main", "sync")
	sync.Attempts, sync.Failed = 1, true
	if got := st.ProgressOf("main", "update"); got.Attempts != 3 {
		t.Fatalf("the update's record after the sync's failure: attempts %d, want 3", got.Attempts)
	}
	value, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// The first record stays where a gateway that kept one per callback
	// reads it; the others follow in "o".
	if !strings.Contains(value, `"p":{"main":{"a":3,`) || !strings.Contains(value, `"v":"update","o":[{"a":1,`) || !strings.HasSuffix(value, `"x":true,"v":"sync"}]}}}`) {
		t.Errorf("annotation %s, want the update's record under main and the sync's in its o", value)
	}
	back, err := Decode(value)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		event    string
		attempts int
		failed   bool
	}{{"update", 3, false}, {"sync", 1, true}} {
		if p := back.ProgressFor("main", tt.event); p == nil || p.Event != tt.event || p.Attempts != tt.attempts || p.Failed != tt.failed {
			t.Errorf("%s's record after a round trip = %+v, want %d attempts, failed %v", tt.event, p, tt.attempts, tt.failed)
		}
	}
	if p := back.ProgressFor("main", "timer"); p != nil {
		t.Errorf("a timer without a record of its own has %+v", p)
	}

	back.ClearIf("main", func(p *Progress) bool { return p.Event == "update" })
	if p := back.Progress["main"]; p == nil || p.Event != "sync" || len(p.Others) != 0 {
		t.Errorf("after the update's record ended, the record under the id is %+v, want the sync's alone", p)
	}
	back.ClearFailed("main", "update")
	if p := back.Progress["main"]; p == nil || !p.Failed {
		t.Errorf("after the update's permanent failures ended, the sync's is %+v, want it kept", p)
	}
	back.ClearFailed("main", "sync")
	if back.Progress != nil {
		t.Errorf("progress %+v after every record ended, want none", back.Progress)
	}
}

// A record written before events were kept (no v) counts for every event;
// the next failure makes it that event's record, whose call continued it.
func TestARecordWithoutEventCountsForEveryEvent(t *testing.T) {
	st, err := Decode(`{"p":{"main":{"a":2,"f":"2026-01-01T00:00:00Z","d":"abc"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, event := range []string{"create", "update", "sync", "timer", "delete"} {
		if p := st.ProgressFor("main", event); p == nil || p.Attempts != 2 {
			t.Errorf("%s: record %+v, want the old one", event, p)
		}
	}
	if p := st.ProgressOf("main", "sync"); p.Attempts != 2 || p.Event != "sync" {
		t.Errorf("the sync's record = %+v, want the old one, now the sync's", p)
	}
	if p := st.ProgressFor("main", "update"); p != nil {
		t.Errorf("the update's record = %+v after the old one became the sync's, want none", p)
	}
}

// A callback's events wait out each other's backoff, but for delete: its
// own waits only for itself and holds no other event back.
func TestABackoffHoldsTheCallbacksOtherEventsButDelete(t *testing.T) {
	for _, tt := range []struct {
		recorded, event string
		want            bool
	}{
		{"update", "update", true},
		{"sync", "update", true},
		{"update", "timer", true},
		{"update", "delete", false},
		{"delete", "sync", false},
		{"delete", "delete", true},
		{"", "delete", true}, // written before events were kept
	} {
		if got := (&Progress{Event: tt.recorded}).Holds(tt.event); got != tt.want {
			t.Errorf("a record of %q holds %s back: %v, want %v", tt.recorded, tt.event, got, tt.want)
		}
	}
}

// A permanent failure has no next attempt: its record carries no "n" (a
// zero time written out was 25 bytes of every failing object's
// annotation), and reads back with a zero Next as before.
func TestAPermanentFailureWritesNoNextAttempt(t *testing.T) {
	st := &State{}
	p := st.ProgressOf("main", "update")
	p.Attempts, p.Failed, p.Digest = 5, true, "abc"
	value, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(value, `"n":`) {
		t.Errorf("annotation %s carries a next attempt for a permanent failure", value)
	}
	back, err := Decode(value)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.ProgressFor("main", "update"); got == nil || !got.Next.IsZero() || !got.Failed {
		t.Errorf("record after a round trip = %+v, want failed with no next attempt", got)
	}
}

// A record keeps how many of its attempts a shutdown cut off (i), through
// the annotation and back; one written before they were kept (no i) has
// none, so every attempt counts, as it did.
func TestARecordKeepsItsInterruptedAttempts(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int
	}{
		{`{"p":{"main":{"a":3,"f":"2026-01-01T00:00:00Z","d":"abc","v":"create"}}}`, 0},
		{`{"p":{"main":{"a":3,"f":"2026-01-01T00:00:00Z","i":2,"d":"abc","v":"create"}}}`, 2},
	} {
		st, err := Decode(tc.value)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.ProgressFor("main", "create").Interrupted; got != tc.want {
			t.Errorf("%s: %d interrupted attempts, want %d", tc.value, got, tc.want)
		}
		back, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if back != tc.value {
			t.Errorf("round trip of %s gave %s", tc.value, back)
		}
	}
}
