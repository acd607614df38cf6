package engine

import (
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/opgate/opgate/gateway/check"
)

func TestUndoMergePatchSetsBackEveryFieldThePatchTouched(t *testing.T) {
	for _, tc := range []struct{ name, before, patch string }{
		{"added field", `{"a":1}`, `{"b":2}`},
		{"changed field", `{"a":1,"b":2}`, `{"a":3}`},
		{"removed field", `{"a":1,"b":2}`, `{"a":null}`},
		{"nested map", `{"m":{"x":1,"y":{"z":true}}}`, `{"m":{"x":2,"y":{"z":null,"w":"new"}}}`},
		{"map replacing a scalar", `{"m":1}`, `{"m":{"x":1}}`},
		{"scalar replacing a map", `{"m":{"x":1}}`, `{"m":"flat"}`},
		{"list", `{"l":[1,2,3]}`, `{"l":[4]}`},
		{"from an empty status", `{}`, `{"observed":3,"nodes":["a"],"c":{"d":1}}`},
		{"untouched fields stay", `{"keep":{"k":1},"a":1}`, `{"a":2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, patch map[string]any
			if err := json.Unmarshal([]byte(tc.before), &before); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.patch), &patch); err != nil {
				t.Fatal(err)
			}
			after, err := jsonpatch.MergePatch([]byte(tc.before), []byte(tc.patch))
			if err != nil {
				t.Fatal(err)
			}
			undo, err := json.Marshal(undoMergePatch(before, patch))
			if err != nil {
				t.Fatal(err)
			}
			back, err := jsonpatch.MergePatch(after, undo)
			if err != nil {
				t.Fatal(err)
			}
			if !check.EqualJSON(mustDecode(t, back), before) {
				t.Fatalf("after %s then %s: %s, want %s", tc.patch, undo, back, tc.before)
			}
		})
	}
}

func mustDecode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
