package essence

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// TestDigestsKeptInStateAnnotationsStayTheSame: a gateway reads the digest
// an earlier one wrote; were it to differ, every object would look changed
// and get an update call. The first is from an object a gateway from
// before jsonenc handled (make bench, 2026-12-01); the others are held to
// encoding/json, as it was computed then.
func TestDigestsKeptInStateAnnotationsStayTheSame(t *testing.T) {
	if got := Digest(map[string]any{"spec": map[string]any{"size": int64(3)}}); got != "f1ee10fb4db5b4c045954e5f" {
		t.Errorf("digest of the memcached essence %s, an earlier gateway wrote f1ee10fb4db5b4c045954e5f", got)
	}
	for _, e := range []map[string]any{
		{"spec": map[string]any{"image": "nginx:<1.27>&", "ratio": 0.1, "big": 1e21, "tiny": 1e-7, "list": []any{"a", int64(2), nil, true}}},
		{"metadata": map[string]any{"labels": map[string]any{"app": "mc", "é": "\u2028"}}, "spec": map[string]any{}},
	} {
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		if want := hex.EncodeToString(sum[:12]); Digest(e) != want {
			t.Errorf("%v: digest %s, of encoding/json's bytes %s", e, Digest(e), want)
		}
	}
}
