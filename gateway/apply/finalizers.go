package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// AddFinalizer adds name to obj's finalizers; RemoveFinalizer takes it away.
// Both use a JSON patch that first tests the list as obj has it (its absence
// included), so a finalizer someone else added meanwhile fails the patch
// instead of being overwritten; the write is then redone on a fresh read.
//
// They return the object as the server holds it afterwards, for the pass
// to go on with. The patch also carries the resourceVersion of the copy it
// was made from, so any change since that copy fails it (409) and it is
// redone on a fresh read: what the server holds afterwards is then that
// copy with the server's new metadata, which is all the answer needs to
// carry (read as metadata alone where the Applier has a REST client).
func (a *Applier) AddFinalizer(ctx context.Context, obj *unstructured.Unstructured, name string) (*unstructured.Unstructured, error) {
	return a.editFinalizers(ctx, obj, adding(name))
}

// RemoveFinalizer removes name from obj's finalizers.
func (a *Applier) RemoveFinalizer(ctx context.Context, obj *unstructured.Unstructured, name string) (*unstructured.Unstructured, error) {
	return a.editFinalizers(ctx, obj, removing(name))
}

// RemoveFinalizerMeta is RemoveFinalizer returning only the metadata of
// the object afterwards.
func (a *Applier) RemoveFinalizerMeta(ctx context.Context, obj *unstructured.Unstructured, name string) (*metav1.ObjectMeta, error) {
	t, err := a.targetOf(obj)
	if err != nil {
		return nil, err
	}
	var out *metav1.ObjectMeta
	// The object's last write: its answer is not read beyond the metadata,
	// so the patch need not fail on changes elsewhere in the object.
	err = a.retryFinalizers(ctx, t, obj, removing(name), false, func(_ *unstructured.Unstructured, body []byte) (err error) {
		out, err = a.patchMeta(ctx, t, types.JSONPatchType, body, false, "")
		return err
	}, func(cur *unstructured.Unstructured) { out = ObjectMetaOf(cur) })
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, classify("update finalizers of "+t.what, err)
	}
	return out, nil
}

func adding(name string) func([]string) ([]string, bool) {
	return func(current []string) ([]string, bool) {
		if slices.Contains(current, name) {
			return nil, false
		}
		return append(slices.Clone(current), name), true
	}
}

func removing(name string) func([]string) ([]string, bool) {
	return func(current []string) ([]string, bool) {
		kept := slices.DeleteFunc(slices.Clone(current), func(f string) bool { return f == name })
		return kept, len(kept) != len(current)
	}
}

// editFinalizers patches obj's finalizers to what edit makes of them,
// rereading the object and editing again when the list changed under it.
// A missing object is no error: there is nothing left to hold.
func (a *Applier) editFinalizers(ctx context.Context, obj *unstructured.Unstructured, edit func([]string) ([]string, bool)) (*unstructured.Unstructured, error) {
	t, err := a.targetOf(obj)
	if err != nil {
		return nil, err
	}
	out := obj
	err = a.retryFinalizers(ctx, t, obj, edit, true, func(from *unstructured.Unstructured, body []byte) error {
		m, err := a.patchMeta(ctx, t, types.JSONPatchType, body, false, "")
		if err != nil {
			return err
		}
		out = WithMeta(from, m)
		return nil
	}, func(cur *unstructured.Unstructured) { out = cur })
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, classify("update finalizers of "+describe(obj), err)
	}
	return out, nil
}

// retryFinalizers sends, through patch, the finalizer patch edit makes of
// obj's list (pinned to the copy's resourceVersion if pin), reading the
// object again after a lost race; patch gets the copy the patch was made
// from, unchanged the object whose list edit leaves as it is.
func (a *Applier) retryFinalizers(ctx context.Context, t target, obj *unstructured.Unstructured, edit func([]string) ([]string, bool), pin bool,
	patch func(from *unstructured.Unstructured, body []byte) error, unchanged func(*unstructured.Unstructured)) error {
	res := a.resourceFor(t.mapping, t.namespace)
	cur := obj
	return retry.OnError(retry.DefaultRetry, raced, func() error {
		var err error
		if cur == nil {
			if cur, err = res.Get(ctx, obj.GetName(), metav1.GetOptions{}); err != nil {
				return err
			}
		}
		next, changed := edit(cur.GetFinalizers())
		if !changed {
			unchanged(cur)
			return nil
		}
		body, err := finalizerPatch(cur, next, pin)
		if err != nil {
			return err
		}
		from := cur
		cur = nil // read again before another attempt
		return patch(from, body)
	})
}

// finalizerPatch sets the finalizers to next if they are still what obj
// holds: a test of an absent list is a test for null. Pinned, it also
// sets obj's resourceVersion, which the server takes as a precondition.
func finalizerPatch(obj *unstructured.Unstructured, next []string, pin bool) ([]byte, error) {
	current, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "metadata", "finalizers")
	op := "replace"
	if current == nil {
		op = "add"
	}
	ops := []jsonPatchOp{
		{"test", "/metadata/finalizers", current},
		{op, "/metadata/finalizers", next},
	}
	if rv := obj.GetResourceVersion(); pin && rv != "" {
		ops = append(ops, jsonPatchOp{"replace", "/metadata/resourceVersion", rv})
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("marshal finalizer patch: %w", err)
	}
	return body, nil
}

// jsonPatchOp is one operation of a JSON patch (RFC 6902); a struct
// encodes without the sorting and copying a map's encoding costs.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}
