package state

import (
	"testing"

	"github.com/opgate/opgate/callbacks/essence"
)

// BenchmarkSetHandledAndEncode is the state write at the end of a round.
func BenchmarkSetHandledAndEncode(b *testing.B) {
	essence := essence.Of(obj(map[string]string{"tier": "cache"}, nil, nil, nil))
	b.ReportAllocs()
	for b.Loop() {
		st := &State{}
		if err := st.SetHandled(essence, DefaultEssenceCap); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
