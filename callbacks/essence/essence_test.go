package essence

import (
	"reflect"
	"testing"

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

func TestEssenceIgnoresWhatTheGatewayAndServerWrite(t *testing.T) {
	base := Digest(Of(obj(map[string]string{"tier": "cache"}, nil, nil, nil)))
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		same bool
	}{
		{"status change", obj(map[string]string{"tier": "cache"}, nil, nil, map[string]any{"nodes": []any{"a"}}), true},
		{"own state annotation", obj(map[string]string{"tier": "cache"}, map[string]string{"opgate.dev/state.memcached": "{}"}, nil, nil), true},
		{"finalizer", obj(map[string]string{"tier": "cache"}, nil, []string{"opgate.dev/memcached"}, nil), true},
		{"kubectl last-applied", obj(map[string]string{"tier": "cache"}, map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}, nil, nil), true},
		{"user label change", obj(map[string]string{"tier": "db"}, nil, nil, nil), false},
		{"user annotation", obj(map[string]string{"tier": "cache"}, map[string]string{"team": "a"}, nil, nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Digest(Of(tt.obj)) == base
			if got != tt.same {
				t.Errorf("digest equal = %v, want %v; essence %v", got, tt.same, Of(tt.obj))
			}
		})
	}
}

// Labels and annotations enter the essence as GetLabels and GetAnnotations
// read them: a null value as "", none at all when one is not a string.
func TestOfReadsLabelsAndAnnotationsAsTheirGetters(t *testing.T) {
	cases := []struct {
		name string
		in   map[string]any
		want any // metadata.annotations of the essence; nil: none
	}{
		{"strings", map[string]any{"a": "1", OwnPrefix + "state.x": "s"}, map[string]any{"a": "1"}},
		{"null value", map[string]any{"a": nil, "b": "2"}, map[string]any{"a": "", "b": "2"}},
		{"a number", map[string]any{"a": int64(1), "b": "2"}, nil},
		{"only own", map[string]any{OwnPrefix + "state.x": "s"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"metadata": map[string]any{"name": "x", "annotations": tc.in, "labels": tc.in},
				"spec":     map[string]any{"size": int64(1)},
			}}
			meta, _ := Of(obj)["metadata"].(map[string]any)
			for _, field := range []string{"annotations", "labels"} {
				got, ok := meta[field]
				if tc.want == nil && ok {
					t.Errorf("%s = %v, want none", field, got)
				}
				if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s = %v, want %v", field, got, tc.want)
				}
			}
		})
	}
}
