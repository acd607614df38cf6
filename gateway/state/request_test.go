package state

import (
	"strings"
	"testing"
)

// A request value of any size costs the state a fixed few bytes, so the
// state still fits an object whose annotations are near their limit.
func TestRequestDigestKeepsTheStateSmallWhateverTheValue(t *testing.T) {
	huge := strings.Repeat("z", 150_000)
	annotations := map[string]string{"opgate.dev/reconcile-requested-at": huge, "big": strings.Repeat("b", 95_500)}
	s := &State{UID: "u", Handled: "h", Requested: RequestDigest(huge)}
	room := Room(annotations, "opgate.dev/state.op")
	value, _, err := s.EncodeWithin(room)
	if err != nil {
		t.Fatal(err)
	}
	if len(value) > room || len(value) > 200 {
		t.Fatalf("state of %d bytes with a request digest, room %d", len(value), room)
	}
	if d := RequestDigest(huge); len(d) != 16 || !s.RequestHandled(huge) || s.RequestHandled(huge+"!") {
		t.Fatalf("digest %q: handled %v, other value handled %v", d, s.RequestHandled(huge), s.RequestHandled(huge+"!"))
	}
}
