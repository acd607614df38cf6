package apply

import (
	"encoding/json"
	"math"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// The patches are written by hand for speed; each must be byte for byte
// what encoding/json writes for the same document.

func TestFinalizerPatchIsWhatEncodingJSONWrites(t *testing.T) {
	for _, tt := range []struct {
		name string
		meta map[string]any
		next []string
		pin  bool
	}{
		{"no finalizers yet", map[string]any{"uid": "u-1", "resourceVersion": "7"}, []string{"opgate.dev/op"}, true},
		{"some, unpinned", map[string]any{"uid": "u-1", "finalizers": []any{"a", "b<&>"}}, []string{"a"}, false},
		{"none left", map[string]any{"finalizers": []any{"x"}}, []string{}, false},
		{"a nil next", map[string]any{"uid": "u\u2028", "finalizers": []any{"x"}}, nil, true},
		{"odd values the server never sends", map[string]any{"finalizers": []any{1.5, nil, map[string]any{"k": "\xff"}}}, []string{"\n"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{"metadata": tt.meta}}
			got, err := finalizerPatch(obj, tt.next, tt.pin)
			if err != nil {
				t.Fatal(err)
			}
			current := tt.meta["finalizers"]
			op := "replace"
			if current == nil {
				op = "add"
			}
			var ops []map[string]any
			if uid, ok := tt.meta["uid"]; ok {
				ops = append(ops, map[string]any{"op": "test", "path": "/metadata/uid", "value": uid})
			}
			ops = append(ops, map[string]any{"op": "test", "path": "/metadata/finalizers", "value": current},
				map[string]any{"op": op, "path": "/metadata/finalizers", "value": tt.next})
			if rv, ok := tt.meta["resourceVersion"]; ok && tt.pin {
				ops = append(ops, map[string]any{"op": "replace", "path": "/metadata/resourceVersion", "value": rv})
			}
			want, _ := json.Marshal(ops)
			if string(got) != string(want) {
				t.Errorf("patch\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestStatusPatchIsWhatEncodingJSONWrites(t *testing.T) {
	status := map[string]any{"observedSize": int64(3), "deploymentName": "mc-<1>", "ratio": 0.000001, "tags": []any{"a", nil}, "m": map[string]any{}}
	for _, tt := range []struct {
		name   string
		status map[string]any
		p      pin
		meta   map[string]any
	}{
		{"pinned to the uid", status, pin{uid: types.UID("u-1")}, map[string]any{"uid": "u-1"}},
		{"pinned to the resourceVersion", status, pin{rv: "42"}, map[string]any{"resourceVersion": "42"}},
		{"unpinned", status, pin{}, nil},
		{"an empty status", map[string]any{}, pin{rv: "\"quoted\""}, map[string]any{"resourceVersion": "\"quoted\""}},
		{"a nil status", nil, pin{}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statusPatch(tt.status, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			doc := map[string]any{"status": tt.status}
			if tt.meta != nil {
				doc["metadata"] = tt.meta
			}
			want, _ := json.Marshal(doc)
			if string(got) != string(want) {
				t.Errorf("patch\n%s\nwant\n%s", got, want)
			}
		})
	}
	if _, err := statusPatch(map[string]any{"x": math.NaN()}, pin{}); err == nil {
		t.Error("a NaN in the status: no error")
	}
}
