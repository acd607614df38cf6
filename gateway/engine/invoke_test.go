package engine

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// copyWithoutOwnAnnotations is what withoutOwnAnnotations returned before it
// stopped deep-copying the object.
func copyWithoutOwnAnnotations(obj *unstructured.Unstructured) *unstructured.Unstructured {
	out := obj.DeepCopy()
	ann := out.GetAnnotations()
	for k := range ann {
		if strings.HasPrefix(k, "opgate.dev/state.") {
			delete(ann, k)
		}
	}
	out.SetAnnotations(ann)
	return out
}

// Handlers see the object without the gateway's state annotations, as a
// deep copy without them would show it, and the pass's object keeps them.
func TestRequestObjectHidesOwnAnnotationsOnly(t *testing.T) {
	withAnnotations := func(ann map[string]any) *unstructured.Unstructured {
		obj := memcachedObject()
		meta := obj.Object["metadata"].(map[string]any)
		if ann == nil {
			delete(meta, "annotations")
		} else {
			meta["annotations"] = ann
		}
		return obj
	}
	tests := []struct {
		name string
		ann  map[string]any
	}{
		{"no annotations", nil},
		{"empty annotations", map[string]any{}},
		{"only others", map[string]any{"note": "kept", "opgate.dev/other": "x"}},
		{"only ours", map[string]any{"opgate.dev/state.memcached": "s", "opgate.dev/state.other": "t"}},
		{"ours and others", map[string]any{"opgate.dev/state.memcached": "s", "note": "kept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := withAnnotations(tt.ann)
			before := runtime.DeepCopyJSON(obj.Object)
			want := copyWithoutOwnAnnotations(obj)
			got := withoutOwnAnnotations(obj)
			if !reflect.DeepEqual(got.Object, want.Object) {
				t.Errorf("request object\n got %#v\nwant %#v", got.Object, want.Object)
			}
			if !reflect.DeepEqual(obj.Object, before) {
				t.Errorf("the pass's object changed: %#v", obj.Object)
			}
		})
	}
}
