package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"
)

// The version noted is the highest of the events handed on, whichever
// kind of event carried it, and it is noted before the handler runs (a
// pass the handler queues reads it).
func TestHandledRVNotesEachEventBeforeItsHandler(t *testing.T) {
	obj := func(rv string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetResourceVersion(rv)
		return u
	}
	seen := &handledRV{}
	var atHandler []uint64
	record := func(any) { atHandler = append(atHandler, seen.Load()) }
	h := seen.noting(cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, n any) { record(n) },
		DeleteFunc: record,
	})
	h.OnAdd(obj("7"), true)
	h.OnUpdate(obj("7"), obj("12"))
	h.OnAdd(obj("9"), false) // an older object's event keeps the highest
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/x", Obj: obj("15")})
	h.OnDelete(obj("not a number"))
	want := []uint64{7, 12, 12, 15, 15}
	if len(atHandler) != len(want) {
		t.Fatalf("handler called %d times, want %d", len(atHandler), len(want))
	}
	for i := range want {
		if atHandler[i] != want[i] {
			t.Errorf("event %d: noted %d when its handler ran, want %d", i, atHandler[i], want[i])
		}
	}
}
