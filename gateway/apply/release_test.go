package apply

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestReleasePatch(t *testing.T) {
	obj := func(meta map[string]any) *unstructured.Unstructured {
		meta["resourceVersion"] = "42"
		return &unstructured.Unstructured{Object: map[string]any{"metadata": meta}}
	}
	for _, tt := range []struct {
		name string
		obj  *unstructured.Unstructured
		want string // "" = no patch
	}{
		{"holds nothing", obj(map[string]any{"finalizers": []any{"x.io/other"}}), ""},
		{"finalizer and annotation", obj(map[string]any{
			"finalizers":  []any{"x.io/other", "opgate.dev/op"},
			"annotations": map[string]any{"opgate.dev/state.op": "{}", "keep": "me"},
		}), `[{"op":"test","path":"/metadata/resourceVersion","value":"42"},` +
			`{"op":"replace","path":"/metadata/finalizers","value":["x.io/other"]},` +
			`{"op":"remove","path":"/metadata/annotations/opgate.dev~1state.op"}]`},
		{"annotation only", obj(map[string]any{"annotations": map[string]any{"opgate.dev/state.op": "{}"}}),
			`[{"op":"test","path":"/metadata/resourceVersion","value":"42"},` +
				`{"op":"remove","path":"/metadata/annotations/opgate.dev~1state.op"}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := releasePatch(tt.obj, "opgate.dev/op", "opgate.dev/state.op")
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tt.want {
				t.Errorf("patch =\n%s\nwant\n%s", body, tt.want)
			}
		})
	}
}

func TestFinalizerPatchTestsTheListItRead(t *testing.T) {
	for _, tt := range []struct {
		name    string
		meta    map[string]any
		pin     bool
		wantOps string
	}{
		{"absent list: test for null, then add", map[string]any{}, false,
			`[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["opgate.dev/op"]}]`},
		{"a list: test it, then replace", map[string]any{"finalizers": []any{"x.io/a"}}, false,
			`[{"op":"test","path":"/metadata/finalizers","value":["x.io/a"]},{"op":"replace","path":"/metadata/finalizers","value":["opgate.dev/op"]}]`},
		{"pinned: the copy's resourceVersion is a precondition", map[string]any{"resourceVersion": "42"}, true,
			`[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["opgate.dev/op"]},{"op":"replace","path":"/metadata/resourceVersion","value":"42"}]`},
		{"not pinned: no precondition", map[string]any{"resourceVersion": "42"}, false,
			`[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["opgate.dev/op"]}]`},
		{"a known uid: tested first, so that another object of the name fails the patch", map[string]any{"uid": "u-1", "finalizers": []any{"x.io/a"}}, false,
			`[{"op":"test","path":"/metadata/uid","value":"u-1"},{"op":"test","path":"/metadata/finalizers","value":["x.io/a"]},{"op":"replace","path":"/metadata/finalizers","value":["opgate.dev/op"]}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := finalizerPatch(&unstructured.Unstructured{Object: map[string]any{"metadata": tt.meta}}, []string{"opgate.dev/op"}, tt.pin)
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			_ = json.Unmarshal(body, &got)
			_ = json.Unmarshal([]byte(tt.wantOps), &want)
			if gb, _ := json.Marshal(got); string(gb) != string(mustJSON(want)) {
				t.Errorf("patch = %s, want %s", body, tt.wantOps)
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
