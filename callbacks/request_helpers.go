package callbacks

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// KindKey names a kind in Request.Children and Request.Related, as the
// gateway keys them: "apps/v1/Deployment", "v1/Pod".
func KindKey(apiVersion, kind string) string { return apiVersion + "/" + kind }

// ObjectInt64 reads an integer field of the object, such as
// ObjectInt64("spec", "size"). It fails when the field is absent or not an
// integer, so a handler never mistakes a missing field for zero.
func (r *Request) ObjectInt64(path ...string) (int64, error) {
	if r.Object == nil {
		return 0, fmt.Errorf("request has no object")
	}
	v, found, err := unstructured.NestedInt64(r.Object.Object, path...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", strings.Join(path, "."), err)
	}
	if !found {
		return 0, fmt.Errorf("%s is not set", strings.Join(path, "."))
	}
	return v, nil
}

// ObjectString reads a string field of the object, such as
// ObjectString("spec", "image"); found is false when it is absent.
func (r *Request) ObjectString(path ...string) (value string, found bool, err error) {
	if r.Object == nil {
		return "", false, fmt.Errorf("request has no object")
	}
	v, found, err := unstructured.NestedString(r.Object.Object, path...)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", strings.Join(path, "."), err)
	}
	return v, found, nil
}

// Child returns the observed child of that kind and name, or nil. Children
// are sent with sync and delete requests only.
func (r *Request) Child(apiVersion, kind, name string) *unstructured.Unstructured {
	return r.Children[KindKey(apiVersion, kind)][name]
}

// RelatedObjects returns the related objects of a kind sorted by their key
// (name, or namespace/name), so that a handler's answer does not depend on
// map order. Related objects are sent with sync and delete requests only.
func (r *Request) RelatedObjects(apiVersion, kind string) []*unstructured.Unstructured {
	byName := r.Related[KindKey(apiVersion, kind)]
	keys := slices.Sorted(maps.Keys(byName))
	out := make([]*unstructured.Unstructured, 0, len(keys))
	for _, k := range keys {
		if o := byName[k]; o != nil {
			out = append(out, o)
		}
	}
	return out
}
