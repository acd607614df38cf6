package state

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// randomHex is n characters that do not compress much.
func randomHex(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var b strings.Builder
	for range n {
		fmt.Fprintf(&b, "%x", rng.Uint32()&0xf)
	}
	return b.String()
}

func handledState(t *testing.T, blob string, messages ...string) *State {
	t.Helper()
	st := &State{UID: "u-1"}
	if err := st.SetHandled(map[string]any{"spec": map[string]any{"blob": blob}}, DefaultEssenceCap); err != nil {
		t.Fatal(err)
	}
	for i, m := range messages {
		st.ProgressOf(fmt.Sprintf("cb-%d", i), "sync").Message = m
	}
	return st
}

func TestRoomCountsOtherAnnotationsAndReplacesOurs(t *testing.T) {
	key := "opgate.dev/state.a"
	budget := AnnotationsLimit - AnnotationsHeadroom
	tests := []struct {
		name string
		ann  map[string]string
		want int
	}{
		{"no annotations", nil, budget - len(key)},
		{"our own old value does not count", map[string]string{key: strings.Repeat("x", 1000)}, budget - len(key)},
		{"keys and values of others count", map[string]string{"team": "abc", "opgate.dev/state.b": "{}"}, budget - len(key) - 7 - 20},
		{"others over the budget", map[string]string{"big": strings.Repeat("x", budget)}, -len(key) - 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Room(tt.ann, key); got != tt.want {
				t.Errorf("Room = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestEncodeWithinDropsEssenceThenMessagesButNeverTheState(t *testing.T) {
	blob := randomHex(1, 20<<10) // ~10 KiB compressed, ~14 KiB encoded
	msg := strings.Repeat("m", 512)
	full, _ := handledState(t, blob, msg, msg).Encode()
	noEssence := handledState(t, blob, msg, msg)
	noEssence.Essence = nil
	withoutEssence, _ := noEssence.Encode()
	bare := handledState(t, blob, "", "")
	bare.Essence = nil
	smallest, _ := bare.Encode()

	tests := []struct {
		name        string
		room        int
		want        string
		wantDropped bool
	}{
		{"fits", len(full), full, false},
		{"essence dropped", len(full) - 1, withoutEssence, true},
		{"messages dropped too", len(withoutEssence) - 1, smallest, true},
		{"nothing fits: the smallest state", 0, smallest, true},
		{"no room at all", -100, smallest, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := handledState(t, blob, msg, msg)
			got, dropped, err := st.EncodeWithin(tt.room)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || dropped != tt.wantDropped {
				t.Errorf("EncodeWithin(%d) = %d bytes (dropped %v), want %d bytes (dropped %v)", tt.room, len(got), dropped, len(tt.want), tt.wantDropped)
			}
			back, err := Decode(got)
			if err != nil {
				t.Fatal(err)
			}
			if back.Handled != st.Handled || back.Handled == "" || back.UID != "u-1" || len(back.Progress) != 2 {
				t.Errorf("the digest, uid or progress were lost: %+v", back)
			}
		})
	}
}

// The budget is shared: on an object whose annotations are already large,
// the first operator keeps its essence, the second (which would pass the
// API server's limit) drops its own.
func TestTwoBigStatesShareTheAnnotationBudget(t *testing.T) {
	ann := map[string]string{}
	for i := range 3 {
		ann[fmt.Sprintf("example.com/note-%d", i)] = strings.Repeat("n", 60<<10)
	}
	blob := randomHex(2, 80<<10) // ~40 KiB compressed: under the per-operator cap
	for _, op := range []string{"a", "b"} {
		key := "opgate.dev/state." + op
		value, dropped, err := handledState(t, blob).EncodeWithin(Room(ann, key))
		if err != nil {
			t.Fatal(err)
		}
		ann[key] = value
		if wantDropped := op == "b"; dropped != wantDropped {
			t.Errorf("operator %s: essence dropped = %v, want %v", op, dropped, wantDropped)
		}
		total := 0
		for k, v := range ann {
			total += len(k) + len(v)
		}
		if total > AnnotationsLimit-AnnotationsHeadroom {
			t.Errorf("after operator %s's write the annotations take %d bytes, over the budget", op, total)
		}
	}
}
