package apply

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/failure"
)

// ErrAnnotationMoved is in the error of SwapAnnotationMeta when the
// annotation no longer holds the value the write was meant to replace:
// another writer set it since (a replica that took over, a user).
var ErrAnnotationMoved = errors.New("annotation changed by another writer since it was read")

// SwapAnnotationMeta sets annotation key of obj to value if it still holds
// old (is absent, for nil), and returns the metadata afterwards. A JSON
// patch tests the old value and the uid, so the API server checks them in
// the same update that writes; a replica that lost its Lease and writes
// late cannot overwrite what the new leader recorded since.
//
// A failed test and a refusal of the value (too large) are both 422s; the
// object read again tells them apart: an annotation that moved is
// ErrAnnotationMoved, another object of the name ErrReplaced. A test that
// failed only because the annotations appeared or went meanwhile is tried
// once more.
func (a *Applier) SwapAnnotationMeta(ctx context.Context, obj *unstructured.Unstructured, key string, old *string, value string) (*metav1.ObjectMeta, error) {
	t, err := a.targetOf(obj)
	if err != nil {
		return nil, err
	}
	what := "write annotation " + key + " of " + t.what
	annotations, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "metadata", "annotations")
	m, _ := annotations.(map[string]any)
	haveMap := len(m) > 0
	for attempt := 0; ; attempt++ {
		out, err := a.patchMeta(ctx, t, types.JSONPatchType, swapPatch(key, old, value, obj.GetUID(), haveMap), false, "")
		if err == nil {
			return out, nil
		}
		if !apierrors.IsInvalid(err) || attempt > 0 {
			return nil, writeError(obj, what, err)
		}
		cur, gerr := a.getMeta(ctx, t, "")
		switch {
		case gerr != nil:
			return nil, writeError(obj, what, gerr)
		case otherObject(obj, cur.UID):
			return nil, replacedError(obj)
		case !holds(cur.Annotations, key, old):
			return nil, failure.Temporaryf("StateMoved", "%s: %w", what, ErrAnnotationMoved)
		case (len(cur.Annotations) > 0) == haveMap:
			return nil, writeError(obj, what, err) // the value itself is refused
		}
		haveMap = !haveMap
	}
}

// holds says whether annotations have key at old (not at all, for nil).
func holds(annotations map[string]string, key string, old *string) bool {
	v, ok := annotations[key]
	if old == nil {
		return !ok
	}
	return ok && v == *old
}

// swapPatch is the JSON patch that sets key to value after testing the uid
// and that key is at old. An absent key tests as null, as does an absent
// annotations map, which the patch then adds whole (a path into a missing
// map is an error, not an absent value). A key expected at old is tested
// also where the copy has no annotations: the server may have it still.
func swapPatch(key string, old *string, value string, uid types.UID, haveMap bool) []byte {
	ops := make([]jsonPatchOp, 0, 3)
	if uid != "" {
		ops = append(ops, jsonPatchOp{"test", "/metadata/uid", string(uid)})
	}
	switch {
	case !haveMap && old == nil:
		ops = append(ops,
			jsonPatchOp{"test", "/metadata/annotations", nil},
			jsonPatchOp{"add", "/metadata/annotations", map[string]string{key: value}})
	case old == nil:
		path := "/metadata/annotations/" + jsonPointerEscape(key)
		ops = append(ops, jsonPatchOp{"test", path, nil}, jsonPatchOp{"add", path, value})
	default:
		path := "/metadata/annotations/" + jsonPointerEscape(key)
		ops = append(ops, jsonPatchOp{"test", path, *old}, jsonPatchOp{"replace", path, value})
	}
	body, err := encodePatch(ops)
	if err != nil {
		panic("apply: encode an annotation patch of strings: " + err.Error()) // strings always encode
	}
	return body
}

// getMeta reads the object's metadata, as the writes' answers are read,
// at resourceVersion ("": the latest, from etcd; "0": whatever the API
// server's watch cache holds).
func (a *Applier) getMeta(ctx context.Context, t target, resourceVersion string) (*metav1.ObjectMeta, error) {
	if a.rc == nil {
		out, err := a.resourceFor(t.mapping, t.namespace).Get(ctx, t.name, metav1.GetOptions{ResourceVersion: resourceVersion})
		if err != nil {
			return nil, err
		}
		return ObjectMetaOf(out), nil
	}
	req := a.rc.Get().AbsPath(t.path("")...).SetHeader("Accept", metadataOnly)
	if resourceVersion != "" {
		req = req.Param("resourceVersion", resourceVersion)
	}
	res := req.Do(ctx)
	if err := res.Error(); err != nil {
		return nil, err
	}
	raw, _ := res.Raw()
	return decodeMeta(raw)
}
