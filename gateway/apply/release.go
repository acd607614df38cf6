package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// Release removes an operator's finalizer and state annotation from the
// object namespace/name of m's kind, if letGo, asked about a fresh read,
// agrees. The patch tests the resourceVersion it read, so a change made in
// between (the object rejoining the operator's selection, say) is seen
// before anything is let go: the read and the question are then repeated.
// It reports whether it wrote; a missing object is not an error.
func (a *Applier) Release(ctx context.Context, m *meta.RESTMapping, namespace, name, finalizer, annotation string, letGo func(*unstructured.Unstructured) bool) (bool, error) {
	res := a.resourceFor(m, namespace)
	released := false
	err := retry.OnError(retry.DefaultRetry, raced, func() error {
		released = false
		obj, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil || !letGo(obj) {
			return err
		}
		body, err := releasePatch(obj, finalizer, annotation)
		if err != nil || body == nil {
			return err
		}
		// Only whether it took matters, not the object.
		if _, err := a.patchMeta(ctx, target{mapping: m, namespace: namespace, name: name}, types.JSONPatchType, body, false, ""); err != nil {
			return err
		}
		released = true
		return nil
	})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, classify(fmt.Sprintf("release %s %s", m.GroupVersionKind.Kind, strings.TrimPrefix(namespace+"/"+name, "/")), err)
	}
	return released, nil
}

// releasePatch is the JSON patch removing finalizer and annotation from
// obj, guarded by obj's resourceVersion; nil when obj holds neither.
func releasePatch(obj *unstructured.Unstructured, finalizer, annotation string) ([]byte, error) {
	ops := []map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": obj.GetResourceVersion()}}
	if fins := obj.GetFinalizers(); slices.Contains(fins, finalizer) {
		kept := slices.DeleteFunc(slices.Clone(fins), func(f string) bool { return f == finalizer })
		ops = append(ops, map[string]any{"op": "replace", "path": "/metadata/finalizers", "value": kept})
	}
	if _, ok := obj.GetAnnotations()[annotation]; ok {
		ops = append(ops, map[string]any{"op": "remove", "path": "/metadata/annotations/" + jsonPointerEscape(annotation)})
	}
	if len(ops) == 1 {
		return nil, nil
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("marshal release patch: %w", err)
	}
	return body, nil
}

// jsonPointerEscape escapes one JSON pointer segment (RFC 6901).
func jsonPointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
