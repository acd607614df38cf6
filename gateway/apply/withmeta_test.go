package apply

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// withMetaBySetters is how WithMeta built the metadata through
// Unstructured's setters, kept as the oracle of the direct build.
func withMetaBySetters(obj *unstructured.Unstructured, m *metav1.ObjectMeta) *unstructured.Unstructured {
	top := make(map[string]any, len(obj.Object))
	for k, v := range obj.Object {
		top[k] = v
	}
	top["metadata"] = map[string]any{}
	out := &unstructured.Unstructured{Object: top}
	out.SetName(m.Name)
	out.SetGenerateName(m.GenerateName)
	out.SetNamespace(m.Namespace)
	out.SetUID(m.UID)
	out.SetResourceVersion(m.ResourceVersion)
	if m.Generation != 0 {
		out.SetGeneration(m.Generation)
	}
	out.SetCreationTimestamp(m.CreationTimestamp)
	out.SetDeletionTimestamp(m.DeletionTimestamp)
	out.SetDeletionGracePeriodSeconds(m.DeletionGracePeriodSeconds)
	out.SetLabels(m.Labels)
	out.SetAnnotations(m.Annotations)
	out.SetOwnerReferences(m.OwnerReferences)
	out.SetFinalizers(m.Finalizers)
	return out
}

// matchesSetters checks WithMeta against the setters: the same object,
// value for value and type for type, sharing nothing mutable with m.
func matchesSetters(t *testing.T, m *metav1.ObjectMeta) {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "bench.opgate.dev/v1", "kind": "Memcached",
		"metadata": map[string]any{"name": "old", "managedFields": []any{map[string]any{"manager": "x"}}},
		"spec":     map[string]any{"size": int64(1)},
	}}
	want := withMetaBySetters(obj, m)
	got := WithMeta(obj, m)
	if !reflect.DeepEqual(got.Object, want.Object) {
		t.Fatalf("WithMeta built\n%#v\nthe setters\n%#v", got.Object, want.Object)
	}
	// What the result holds is its own: changing it leaves m as it was.
	before := m.DeepCopy()
	md := got.Object["metadata"].(map[string]any)
	for _, v := range md {
		switch v := v.(type) {
		case map[string]any:
			v["changed"] = "yes"
		case []any:
			if len(v) > 0 {
				v[0] = "changed"
			}
		}
	}
	if !reflect.DeepEqual(m, before) {
		t.Errorf("changing the result changed its metadata: %#v", m)
	}
}

func TestWithMetaBuildsWhatTheSettersBuilt(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 12, 1, 23, 40, 5, 0, time.FixedZone("CET", 3600)))
	var full metav1.ObjectMeta
	fillEvery(t, reflect.ValueOf(&full).Elem(), "ObjectMeta")
	for _, tt := range []struct {
		name string
		m    metav1.ObjectMeta
	}{
		{"nothing", metav1.ObjectMeta{}},
		{"every field filled", full},
		{"a created object", metav1.ObjectMeta{
			Name: "mc-1", Namespace: "ns", UID: "u-1", ResourceVersion: "42", Generation: 3, CreationTimestamp: created,
			Labels: map[string]string{"app": "mc"}, Annotations: map[string]string{"opgate.dev/state.bench": `{"u":"u-1"}`},
			Finalizers: []string{"opgate.dev/bench"},
		}},
		{"a deleting object, its grace period 0", metav1.ObjectMeta{
			Name: "mc-1", DeletionTimestamp: &created, DeletionGracePeriodSeconds: ptr[int64](0),
		}},
		{"empty but present labels, annotations, owners and finalizers", metav1.ObjectMeta{
			Labels: map[string]string{}, Annotations: map[string]string{}, OwnerReferences: []metav1.OwnerReference{}, Finalizers: []string{},
		}},
		{"owners with and without controller and blockOwnerDeletion", metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "K", Name: "a", UID: "u"},
			{APIVersion: "v1", Kind: "K", Name: "b", UID: "v", Controller: ptr(true), BlockOwnerDeletion: ptr(false)},
			{},
		}}},
		{"a negative generation", metav1.ObjectMeta{Generation: -1}},
		{"a zero deletion timestamp, which the setters keep as an empty string", metav1.ObjectMeta{DeletionTimestamp: &metav1.Time{}}},
		{"a generate name only", metav1.ObjectMeta{GenerateName: "mc-"}},
	} {
		t.Run(tt.name, func(t *testing.T) { matchesSetters(t, &tt.m) })
	}
}

func FuzzWithMetaBuildsWhatTheSettersBuilt(f *testing.F) {
	for _, tt := range decodeMetaCases(f) {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := decodeMetaReflect(raw)
		if err != nil {
			return
		}
		matchesSetters(t, m)
	})
}

func BenchmarkWithMeta(b *testing.B) {
	obj := canned(b, "testdata/widget.json")
	m := ObjectMetaOf(obj)
	m.Finalizers = []string{"opgate.dev/bench"}
	m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "K", Name: "a", UID: "u", Controller: ptr(true)}}
	b.ReportAllocs()
	for b.Loop() {
		_ = WithMeta(obj, m)
	}
}
