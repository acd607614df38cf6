package state

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/opgate/opgate/callbacks/essence"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func obj(labels, annotations map[string]string, finalizers []string, status any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
		"metadata": map[string]any{"name": "m", "namespace": "default", "resourceVersion": "7", "generation": int64(2)},
		"spec":     map[string]any{"size": int64(3)},
	}}
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	u.SetFinalizers(finalizers)
	if status != nil {
		u.Object["status"] = status
	}
	return u
}

func TestStateRoundTripsThroughTheAnnotation(t *testing.T) {
	st := &State{Round: &Round{Event: "update", Done: []string{"a"}}}
	e := essence.Of(obj(nil, nil, nil, nil))
	if err := st.SetHandled(e, DefaultEssenceCap); err != nil {
		t.Fatal(err)
	}
	st.ProgressOf("resize", "update").Attempts = 3
	value, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(value)
	if err != nil {
		t.Fatal(err)
	}
	old, err := back.HandledEssence()
	if err != nil {
		t.Fatal(err)
	}
	if essence.Digest(old) != back.Handled || back.Handled != essence.Digest(e) {
		t.Errorf("handled essence does not match its digest after a round trip")
	}
	if back.Progress["resize"].Attempts != 3 || !back.Round.IsDone("a") || back.Round.IsDone("b") {
		t.Errorf("round/progress lost in the round trip: %+v", back)
	}
}

func TestSetHandledDropsEssenceOverTheCapButKeepsDigest(t *testing.T) {
	// Random text: it does not compress below the cap as repeated text would.
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for range 8 << 10 {
		fmt.Fprintf(&b, "%x", rng.Uint32()&0xf)
	}
	big := map[string]any{"spec": map[string]any{"blob": b.String()}}
	st := &State{}
	if err := st.SetHandled(big, 1024); err != nil {
		t.Fatal(err)
	}
	if st.Essence != nil {
		t.Errorf("essence kept (%d bytes) over a 1 KiB cap", len(st.Essence))
	}
	if st.Handled != essence.Digest(big) {
		t.Errorf("digest not recorded when the essence is dropped")
	}
	if old, err := st.HandledEssence(); err != nil || old != nil {
		t.Errorf("HandledEssence returned an essence (%d keys) or error %v; want nil, nil", len(old), err)
	}
}

func TestDecodeRefusesGarbage(t *testing.T) {
	if _, err := Decode("{not json"); err == nil {
		t.Error("Decode accepted garbage")
	}
	if st, err := Decode(""); err != nil || st.Handled != "" {
		t.Errorf("empty annotation = %+v, %v; want zero state", st, err)
	}
}

func TestDecodeForBindsTheStateToTheObject(t *testing.T) {
	tests := []struct {
		name        string
		value       string
		wantHandled string
		wantForeign bool
	}{
		{"no annotation", "", "", false},
		{"written for this object", `{"u":"uid-1","h":"abc"}`, "abc", false},
		{"copied from another object", `{"u":"uid-2","h":"abc","p":{"x":{"a":3,"f":"2026-01-01T00:00:00Z"}}}`, "", true},
		{"written without a uid: adopted", `{"h":"abc"}`, "abc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, foreign, err := DecodeFor(tt.value, "uid-1")
			if err != nil {
				t.Fatal(err)
			}
			if st.Handled != tt.wantHandled || foreign != tt.wantForeign {
				t.Errorf("handled %q, foreign %v; want %q, %v", st.Handled, foreign, tt.wantHandled, tt.wantForeign)
			}
			if tt.wantForeign && (st.Progress != nil || st.Round != nil || st.Essence != nil) {
				t.Errorf("state of another object kept: %+v", st)
			}
			if st.UID != "uid-1" {
				t.Errorf("uid = %q, want the object's: the next write must record it", st.UID)
			}
		})
	}
	if _, _, err := DecodeFor("{not json", "uid-1"); err == nil {
		t.Error("DecodeFor accepted garbage")
	}
}

// Essences are read by reused decompressors: each read yields its own
// state's essence, and a corrupt one fails without spoiling the next read.
func TestHandledEssenceReadsEachStateItsOwn(t *testing.T) {
	states := make([]*State, 3)
	for i := range states {
		states[i] = &State{}
		if err := states[i].SetHandled(map[string]any{"spec": map[string]any{"size": int64(i)}}, DefaultEssenceCap); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := &State{Essence: []byte("not gzip")}
	for round := range 2 {
		for i, st := range states {
			e, err := st.HandledEssence()
			if err != nil {
				t.Fatalf("round %d, state %d: %v", round, i, err)
			}
			if got := e["spec"].(map[string]any)["size"]; got != int64(i) {
				t.Errorf("round %d, state %d: read size %v", round, i, got)
			}
		}
		if _, err := corrupt.HandledEssence(); err == nil {
			t.Error("a corrupt essence was read without error")
		}
	}
}

// Small essences are kept as their JSON: gzip's 18-byte frame makes them
// larger, and each compression takes a pooled writer of about 800 KB.
// Large ones are compressed, and essences written gzipped before stay
// readable.
func TestEssenceIsCompressedOnlyWhenLarge(t *testing.T) {
	small := map[string]any{"spec": map[string]any{"size": int64(3)}}
	large := map[string]any{"spec": map[string]any{"text": strings.Repeat("memcached ", 400)}}
	gzipped := &State{}
	if err := gzipped.SetHandled(large, DefaultEssenceCap); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		e          map[string]any
		compressed bool
	}{
		{"small", small, false},
		{"large", large, true},
	} {
		st := &State{}
		if err := st.SetHandled(tc.e, DefaultEssenceCap); err != nil {
			t.Fatal(err)
		}
		if got := isGzip(st.Essence); got != tc.compressed {
			t.Errorf("%s essence: compressed %v, want %v (%d bytes: %.20q)", tc.name, got, tc.compressed, len(st.Essence), st.Essence)
		}
		back, err := st.HandledEssence()
		if err != nil || essence.Digest(back) != essence.Digest(tc.e) {
			t.Errorf("%s essence does not read back: %v, %v", tc.name, back, err)
		}
	}
	if !isGzip(gzipped.Essence) {
		t.Fatalf("the large essence was not compressed")
	}
	back, err := gzipped.HandledEssence()
	if err != nil || essence.Digest(back) != essence.Digest(large) {
		t.Errorf("a gzipped essence does not read back: %v", err)
	}
}

// An integer past float64's 2^53 (an id, a byte count) kept in the handled
// essence comes back as itself: as a float64 it came back as another
// number, which every later update showed as changed in its diff.
func TestAnIntegerPastFloatPrecisionSurvivesTheHandledEssence(t *testing.T) {
	for _, size := range []int{1, plainEssenceMax} { // kept plain, and gzipped
		e := map[string]any{"spec": map[string]any{"seed": int64(9007199254740993), "pad": strings.Repeat("x", size)}}
		st := &State{}
		if err := st.SetHandled(e, DefaultEssenceCap); err != nil {
			t.Fatal(err)
		}
		old, err := st.HandledEssence()
		if err != nil {
			t.Fatal(err)
		}
		if ops := essence.Diff(old, e); len(ops) != 0 {
			t.Errorf("essence of %d bytes: diff against itself = %+v, want none", size, ops)
		}
	}
}

// A dropped update round's done callbacks are behind at its essence, taken
// out of the older essence they were behind at; an essence that is the
// handled one again owes nothing. Behind survives the annotation, and
// callbacks the operator no longer has leave it.
func TestADroppedRoundPutsItsDoneCallbacksBehindAtItsEssence(t *testing.T) {
	st := &State{Handled: "h1", Behind: []*Seen{
		{IDs: []string{"resize", "audit"}, Digest: "d2"},
		{IDs: []string{"notify"}, Digest: "h1"},
	}}
	st.Round = &Round{Event: "update", Done: []string{"audit"}, Digest: "d3"}
	if err := st.KeepRoundEssence(map[string]any{"spec": map[string]any{"size": int64(3)}}, DefaultEssenceCap); err != nil {
		t.Fatal(err)
	}
	st.Behind = st.BehindAfterDrop(st.Round)
	value, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(value)
	if err != nil {
		t.Fatal(err)
	}
	if g := SeenBy(back.Behind, "resize"); g == nil || g.Digest != "d2" {
		t.Errorf("resize behind at %+v, want d2 (not done in the dropped round)", g)
	}
	g := SeenBy(back.Behind, "audit")
	if g == nil || g.Digest != "d3" {
		t.Fatalf("audit behind at %+v, want d3 (done in the dropped round)", g)
	}
	if old, err := g.Old(); err != nil || old["spec"].(map[string]any)["size"] != int64(3) {
		t.Errorf("audit's old = %v (%v), want the dropped round's essence", old, err)
	}
	if g := SeenBy(back.Behind, "notify"); g != nil {
		t.Errorf("notify behind at %+v, want nothing: it saw the handled essence", g)
	}
	back.KeepBehind(func(id string) bool { return id != "resize" && id != "audit" })
	if back.Behind != nil {
		t.Errorf("behind = %+v after its callbacks were removed, want none", back.Behind)
	}
}
