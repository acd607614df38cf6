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
	st.ProgressOf("resize").Attempts = 3
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
