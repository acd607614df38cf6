package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/opgate/opgate/internal/jsonenc"
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
	if apierrors.IsNotFound(err) || errors.Is(err, ErrReplaced) {
		return nil, nil // obj is gone
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
// A missing object is no error: there is nothing left to hold; nor is
// another of the same name found on a fresh read (obj was deleted and the
// name used again), whose finalizers are not obj's to edit.
//
// The first attempt writes from obj, the caller's copy, pinned to its
// resourceVersion, and reads the answer's metadata alone: if the write
// took, the object is obj with that metadata, unless the write itself
// changed more (a mutating admission webhook on updates). A metadata-only
// edit never moves a custom resource's generation, so a moved generation
// says so, and the object is read whole. Attempts after a lost race write
// from a fresh read, unpinned (a pin on an object others write often could
// lose every race), and take the whole answer, as before the pin.
func (a *Applier) editFinalizers(ctx context.Context, obj *unstructured.Unstructured, edit func([]string) ([]string, bool)) (*unstructured.Unstructured, error) {
	t, err := a.targetOf(obj)
	if err != nil {
		return nil, err
	}
	res := a.resourceFor(t.mapping, t.namespace)
	out := obj
	err = a.retryFinalizers(ctx, t, obj, edit, true, func(from *unstructured.Unstructured, body []byte) error {
		if from != obj {
			var err error
			out, err = res.Patch(ctx, t.name, types.JSONPatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
			return err
		}
		m, err := a.patchMeta(ctx, t, types.JSONPatchType, body, false, "")
		if err != nil {
			return err
		}
		if m.Generation != from.GetGeneration() {
			cur, err := res.Get(ctx, t.name, metav1.GetOptions{})
			if err == nil && cur.GetUID() == from.GetUID() {
				out = cur
				return nil
			}
			// Not read (or already another object): the write took, and
			// the watch event of what else changed brings the rest.
		}
		out = WithMeta(from, m)
		return nil
	}, func(cur *unstructured.Unstructured) { out = cur })
	if apierrors.IsNotFound(err) || errors.Is(err, ErrReplaced) {
		return nil, nil // obj is gone
	}
	if err != nil {
		return nil, classify("update finalizers of "+describe(obj), err)
	}
	return out, nil
}

// retryFinalizers sends, through patch, the finalizer patch edit makes of
// obj's list, reading the object again after a lost race; the first
// attempt, from obj, is pinned to obj's resourceVersion if pin. patch gets
// the copy the patch was made from, unchanged the object whose list edit
// leaves as it is. A fresh read of another object of the name (deleted
// and created again) ends it with ErrReplaced.
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
			if uid := obj.GetUID(); uid != "" && cur.GetUID() != uid {
				return ErrReplaced
			}
		}
		next, changed := edit(cur.GetFinalizers())
		if !changed {
			unchanged(cur)
			return nil
		}
		body, err := finalizerPatch(cur, next, pin && cur == obj)
		if err != nil {
			return err
		}
		from := cur
		cur = nil // read again before another attempt
		return patch(from, body)
	})
}

// finalizerPatch sets the finalizers to next if they are still what obj
// holds (a test of an absent list is a test for null) and the object is
// obj, not another of its name (a test of the uid). Pinned, it also sets
// obj's resourceVersion, which the server takes as a precondition.
func finalizerPatch(obj *unstructured.Unstructured, next []string, pin bool) ([]byte, error) {
	current, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "metadata", "finalizers")
	op := "replace"
	if current == nil {
		op = "add"
	}
	ops := make([]jsonPatchOp, 0, 4)
	if uid := obj.GetUID(); uid != "" {
		ops = append(ops, jsonPatchOp{"test", "/metadata/uid", string(uid)})
	}
	ops = append(ops,
		jsonPatchOp{"test", "/metadata/finalizers", current},
		jsonPatchOp{op, "/metadata/finalizers", next})
	if rv := obj.GetResourceVersion(); pin && rv != "" {
		ops = append(ops, jsonPatchOp{"replace", "/metadata/resourceVersion", rv})
	}
	body, err := encodePatch(ops)
	if err != nil {
		return nil, fmt.Errorf("marshal finalizer patch: %w", err)
	}
	return body, nil
}

// jsonPatchOp is one operation of a JSON patch (RFC 6902).
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// encodePatch writes ops as json.Marshal does, without its reflection.
func encodePatch(ops []jsonPatchOp) ([]byte, error) {
	body := make([]byte, 0, 64*len(ops)+2)
	body = append(body, '[')
	for i, op := range ops {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"op":`...)
		body = jsonenc.AppendString(body, op.Op)
		body = append(body, `,"path":`...)
		body = jsonenc.AppendString(body, op.Path)
		body = append(body, `,"value":`...)
		var err error
		if body, err = jsonenc.Append(body, op.Value); err != nil {
			return nil, err
		}
		body = append(body, '}')
	}
	return append(body, ']'), nil
}
