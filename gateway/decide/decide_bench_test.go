package decide

import (
	"testing"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/state"
)

// BenchmarkDecideUnchangedObject is the common case on every watch event:
// an already handled object whose essence did not change.
func BenchmarkDecideUnchangedObject(b *testing.B) {
	op, obj := testOperator(), object(3, map[string]string{"tier": "cache"})
	st := &state.State{}
	if err := st.SetHandled(essence.Of(obj), state.DefaultEssenceCap); err != nil {
		b.Fatal(err)
	}
	mem := Memory{Seen: true, SyncDigest: "s", SyncedAt: now}
	b.ReportAllocs()
	for b.Loop() {
		Decide(Input{Operator: op, Object: obj, State: st, Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
	}
}

// BenchmarkDecideUpdateWithDiff includes decompressing the old essence and
// diffing it, what an update costs.
func BenchmarkDecideUpdateWithDiff(b *testing.B) {
	op := testOperator()
	st := &state.State{}
	if err := st.SetHandled(essence.Of(object(3, nil)), state.DefaultEssenceCap); err != nil {
		b.Fatal(err)
	}
	obj := object(5, nil)
	b.ReportAllocs()
	for b.Loop() {
		mem := Memory{Seen: true, SyncDigest: "s", SyncedAt: now}
		Decide(Input{Operator: op, Object: obj, State: st, Memory: &mem, SyncDigest: "s", HoldsFinalizer: true, Now: now})
	}
}
