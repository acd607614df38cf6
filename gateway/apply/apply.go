// Package apply is the last arrow: it writes what a checked response asks
// for — children by server-side apply, status by merge patch, the state
// annotation, the finalizer — classifying API errors at this edge.
package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/internal/jsonenc"
)

// FieldManager is the server-side apply field manager of every gateway write.
const FieldManager = "opgate"

// Applier writes to the API server on behalf of one operator.
type Applier struct {
	dyn    dynamic.Interface
	rc     rest.Interface // see WithREST; nil: metadata-only writes decode the whole answer
	mapper meta.RESTMapper
	pins   *pins // see Pinned; nil: none
}

// pins are the mappings an Applier resolves without its mapper.
type pins struct {
	m atomic.Pointer[map[schema.GroupVersionKind]*meta.RESTMapping]
}

// New returns an Applier.
func New(dyn dynamic.Interface, mapper meta.RESTMapper) *Applier {
	return &Applier{dyn: dyn, mapper: mapper}
}

// Pinned returns a copy of a that resolves the kinds of ms to ms without
// asking the mapper (a discovery mapper allocates ~85 objects per
// question). An operator's controller resolves its watched and child kinds
// once, for its informers, and writes them as its informers read them.
func (a *Applier) Pinned(ms ...*meta.RESTMapping) *Applier {
	pinned := make(map[schema.GroupVersionKind]*meta.RESTMapping, len(ms))
	for _, m := range ms {
		pinned[m.GroupVersionKind] = m
	}
	b := *a
	b.pins = &pins{}
	b.pins.m.Store(&pinned)
	return &b
}

// Unpin makes every later write ask the mapper again, as after its Reset
// (a CRD changed: its versions or scope may have too).
func (a *Applier) Unpin() {
	if a.pins != nil {
		a.pins.m.Store(nil)
	}
}

// mappingOf resolves obj's kind.
func (a *Applier) mappingOf(obj *unstructured.Unstructured) (*meta.RESTMapping, error) {
	gvk := obj.GroupVersionKind()
	if a.pins != nil {
		if pinned := a.pins.m.Load(); pinned != nil {
			if m, ok := (*pinned)[gvk]; ok {
				return m, nil
			}
		}
	}
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, mappingFailure(gvk.String(), err)
	}
	return m, nil
}

// Resource returns the client of obj's kind in obj's namespace.
func (a *Applier) Resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	mapping, err := a.mappingOf(obj)
	if err != nil {
		return nil, err
	}
	return a.resourceFor(mapping, obj.GetNamespace()), nil
}

func (a *Applier) resourceFor(m *meta.RESTMapping, namespace string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameRoot {
		return a.dyn.Resource(m.Resource)
	}
	return a.dyn.Resource(m.Resource).Namespace(namespace)
}

// ApplyChild server-side applies one decorated child with the declared
// update strategy and returns the object the server holds afterwards.
func (a *Applier) ApplyChild(ctx context.Context, child *unstructured.Unstructured, strategy spec.UpdateStrategy, existing *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	res, err := a.Resource(child)
	if err != nil {
		return nil, err
	}
	if strategy == spec.UpdateOnDelete && existing != nil {
		// Changes take effect only once someone deletes it. existing is
		// the informer's cached object, shared with its readers: the
		// caller gets its own copy to keep and change.
		return existing.DeepCopy(), nil
	}
	out, err := res.Apply(ctx, child.GetName(), child, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil && strategy == spec.UpdateRecreate && existing != nil && immutableChange(err) {
		// Only a change no update may make: Recreate replaces the object.
		if derr := deleteForRecreate(ctx, res, child, existing); derr != nil {
			return nil, derr
		}
		out, err = res.Apply(ctx, child.GetName(), child, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	}
	if err != nil {
		return nil, classify("apply "+describe(child), err)
	}
	return out, nil
}

// ApplyChildMeta is ApplyChild for a caller that needs only the metadata
// of the object the server holds afterwards. body is child's JSON if the
// caller has made it already (nil: made here).
func (a *Applier) ApplyChildMeta(ctx context.Context, child *unstructured.Unstructured, body []byte, strategy spec.UpdateStrategy, existing *unstructured.Unstructured) (*metav1.ObjectMeta, error) {
	t, err := a.targetOf(child)
	if err != nil {
		return nil, err
	}
	if strategy == spec.UpdateOnDelete && existing != nil {
		return ObjectMetaOf(existing), nil
	}
	if len(child.GetManagedFields()) > 0 {
		// As the dynamic client's Apply refuses it.
		return nil, classify("apply "+t.what, errors.New("cannot apply an object with managed fields already set"))
	}
	if body == nil {
		if body, err = json.Marshal(child.Object); err != nil {
			return nil, classify("apply "+t.what, fmt.Errorf("failed to marshal apply configuration: %w", err))
		}
	}
	out, err := a.patchMeta(ctx, t, types.ApplyPatchType, body, true, "")
	if err != nil && strategy == spec.UpdateRecreate && existing != nil && immutableChange(err) {
		// Only a change no update may make: Recreate replaces the object.
		if derr := deleteForRecreate(ctx, a.resourceFor(t.mapping, t.namespace), child, existing); derr != nil {
			return nil, derr
		}
		out, err = a.patchMeta(ctx, t, types.ApplyPatchType, body, true, "")
	}
	if err != nil {
		return nil, classify("apply "+t.what, err)
	}
	return out, nil
}

// DeleteChild deletes a child no longer desired, in the background.
func (a *Applier) DeleteChild(ctx context.Context, child *unstructured.Unstructured) error {
	res, err := a.Resource(child)
	if err != nil {
		return err
	}
	policy := metav1.DeletePropagationBackground
	err = res.Delete(ctx, child.GetName(), metav1.DeleteOptions{
		PropagationPolicy: &policy,
		Preconditions:     &metav1.Preconditions{UID: ptr(child.GetUID())},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return classify("delete "+describe(child), err)
	}
	return nil
}

// RemoveLabel removes label from child while it still has value there
// and child is still the object of its uid: a child another parent or
// someone else took meanwhile (the patch's tests fail, 422) is left as it
// is, and so is one already gone.
func (a *Applier) RemoveLabel(ctx context.Context, child *unstructured.Unstructured, label, value string) error {
	res, err := a.Resource(child)
	if err != nil {
		return err
	}
	path := "/metadata/labels/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(label)
	body, err := encodePatch([]jsonPatchOp{
		{"test", "/metadata/uid", string(child.GetUID())},
		{"test", path, value},
		{"remove", path, nil},
	})
	if err != nil {
		return fmt.Errorf("marshal label patch: %w", err)
	}
	_, err = res.Patch(ctx, child.GetName(), types.JSONPatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
		return classify("remove label "+label+" of "+describe(child), err)
	}
	return nil
}

// PatchStatus merge-patches .status, through the status subresource when
// the kind has one, and returns the updated object. It does not land on
// another object of obj's name (statusPin), but for the last try of a
// write that lost every race (pinnedStatus), nor after a conflict over a
// state other than the one read (nil: any).
func (a *Applier) PatchStatus(ctx context.Context, obj *unstructured.Unstructured, status map[string]any, subresource bool, read *StateRead) (*unstructured.Unstructured, error) {
	res, err := a.Resource(obj)
	if err != nil {
		return nil, err
	}
	var subresources []string
	if subresource {
		subresources = []string{"status"}
	}
	out, err := pinnedStatus(ctx, obj, status, subresource, read, res, func(body []byte) (*unstructured.Unstructured, error) {
		return res.Patch(ctx, obj.GetName(), types.MergePatchType, body, metav1.PatchOptions{FieldManager: FieldManager}, subresources...)
	})
	if err != nil {
		return nil, writeError(obj, "patch status of "+describe(obj), err)
	}
	if out != nil && otherObject(obj, out.GetUID()) {
		return nil, replacedError(obj)
	}
	return out, nil
}

// PatchStatusMeta is PatchStatus returning only the updated metadata.
func (a *Applier) PatchStatusMeta(ctx context.Context, obj *unstructured.Unstructured, status map[string]any, subresource bool, read *StateRead) (*metav1.ObjectMeta, error) {
	t, err := a.targetOf(obj)
	if err != nil {
		return nil, err
	}
	sub := ""
	if subresource {
		sub = "status"
	}
	out, err := pinnedStatus(ctx, obj, status, subresource, read, a.resourceFor(t.mapping, t.namespace), func(body []byte) (*metav1.ObjectMeta, error) {
		return a.patchMeta(ctx, t, types.MergePatchType, body, false, sub)
	})
	if err != nil {
		return nil, writeError(obj, "patch status of "+t.what, err)
	}
	if otherObject(obj, out.UID) {
		return nil, replacedError(obj)
	}
	return out, nil
}

// pinnedStatus writes status with patch, pinned to obj (statusPin). A
// write through the status subresource pinned to a resourceVersion that
// has moved on (someone else wrote the object meanwhile: 409) reads the
// object again and, while it is still obj, writes again at once, pinned to
// what it read; another object of its name ends it with ErrReplaced.
// After statusPinTries pinned tries the last is made unpinned, right after
// a read found obj: where others write the object as often as the gateway
// (another operator of the kind writes its status and state from the same
// change), a pin could lose every race, and the handler would be called
// again for an answer it gave. An object read again whose annotation
// read.Key no longer holds read.Value ends it with ErrAnnotationMoved:
// another writer (a replica that took over while a leader that lost its
// Lease finished its pass) recorded a newer state, and this status is
// older than the one it wrote.
func pinnedStatus[T any](ctx context.Context, obj *unstructured.Unstructured, status map[string]any, subresource bool, read *StateRead,
	res dynamic.ResourceInterface, patch func(body []byte) (T, error)) (T, error) {
	p := statusPin(obj, subresource)
	for try := 1; ; try++ {
		body, err := statusPatch(status, p)
		if err != nil {
			var none T
			return none, err
		}
		out, err := patch(body)
		if err == nil || p.rv == "" || !apierrors.IsConflict(err) || ctx.Err() != nil {
			return out, err
		}
		cur, gerr := res.Get(ctx, obj.GetName(), metav1.GetOptions{})
		switch {
		case gerr != nil:
			return out, gerr
		case otherObject(obj, cur.GetUID()):
			return out, ErrReplaced
		case read != nil && cur.GetAnnotations()[read.Key] != read.Value:
			return out, failure.Temporaryf("StateMoved", "annotation %s: %w", read.Key, ErrAnnotationMoved)
		case try < statusPinTries:
			p.rv = cur.GetResourceVersion()
		default:
			p.rv = ""
		}
	}
}

// StateRead is the state annotation a status write is made for, as the pass
// that wrote the status read it ("" for none).
type StateRead struct{ Key, Value string }

// statusPinTries is how often a status write is tried pinned before its
// last, unpinned, try.
const statusPinTries = 4

// pin is what a status patch names of its object's metadata, so that it
// never lands on another object of the same name.
type pin struct {
	uid types.UID
	rv  string
}

// statusPin: through the object itself, obj's uid, which is immutable.
// Through the status subresource the server takes the metadata from the
// stored object, uid included, so only a resourceVersion, which it checks
// first, keeps the write off a namesake: obj's own, when obj has a uid to
// tell a namesake by after a lost race.
func statusPin(obj *unstructured.Unstructured, subresource bool) pin {
	switch {
	case !subresource:
		return pin{uid: obj.GetUID()}
	case obj.GetUID() != "":
		return pin{rv: obj.GetResourceVersion()}
	}
	return pin{}
}

// statusPatch is the merge patch {"status": status}, with the metadata p
// names.
func statusPatch(status map[string]any, p pin) ([]byte, error) {
	body := make([]byte, 0, 256)
	switch {
	case p.uid != "":
		body = append(body, `{"metadata":{"uid":`...)
		body = append(jsonenc.AppendString(body, string(p.uid)), "},"...)
	case p.rv != "":
		body = append(body, `{"metadata":{"resourceVersion":`...)
		body = append(jsonenc.AppendString(body, p.rv), "},"...)
	default:
		body = append(body, '{')
	}
	body = append(body, `"status":`...)
	body, err := jsonenc.Append(body, status)
	if err != nil {
		return nil, failure.Permanentf("InvalidStatus", "marshal status patch: %w", err)
	}
	return append(body, '}'), nil
}

// replaced says whether the API server refused a write for its uid: the
// object the write was meant for was deleted, and another of the same name
// created since (metadata.uid is immutable).
func replaced(err error) bool {
	var st apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &st) {
		return false
	}
	if d := st.Status().Details; d != nil {
		for _, c := range d.Causes {
			if c.Field == "metadata.uid" {
				return true
			}
		}
	}
	return false
}

// writeError is a write's failure: replacedError when the server refused
// it because the object of obj's name is another one, else classified.
func writeError(obj *unstructured.Unstructured, what string, err error) error {
	if replaced(err) || errors.Is(err, ErrReplaced) {
		return replacedError(obj)
	}
	return classify(what, err)
}

// ErrReplaced is in the error of a write for an object that was deleted
// while another of the same name was created: the pass that made it ends,
// and the next one reads the new object. The error is also "not found".
var ErrReplaced = errors.New("deleted, and another object of the same name created")

// replacedError is what a write for obj returns when the object of its name
// is another one now: a temporary failure, not found and ErrReplaced.
func replacedError(obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	return failure.Temporaryf("ObjectReplaced", "%s (uid %s): %w (%w)", describe(obj), obj.GetUID(), ErrReplaced,
		apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, obj.GetName()))
}

// otherObject says whether a write's answer with uid is another object
// than obj (unknown uids tell nothing).
func otherObject(obj *unstructured.Unstructured, uid types.UID) bool {
	return obj.GetUID() != "" && uid != "" && uid != obj.GetUID()
}

// raced reports whether a write lost a race with another writer: a failed
// JSON patch test (422) or a stale resourceVersion (409).
func raced(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsInvalid(err)
}

// classify sorts API errors: the server refusing the content is permanent
// (retrying the same content cannot help); everything else is temporary.
func classify(what string, err error) error {
	switch {
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsMethodNotSupported(err),
		apierrors.IsNotAcceptable(err), apierrors.IsUnsupportedMediaType(err), apierrors.IsRequestEntityTooLargeError(err),
		untypablePatch(err):
		return failure.Permanentf("ApplyRejected", "%s: %w", what, err)
	case NamespaceTerminating(err):
		// Temporary for a parent that stays: the namespace may be re-created
		// once gone (NamespaceNotFound then). A deleting parent's delete
		// round skips such a child instead, as one whose namespace is
		// missing (engine's applyChildren).
		return failure.Temporaryf("NamespaceTerminating", "%s: %w", what, err)
	case apierrors.IsForbidden(err):
		// Usually RBAC: fixable without changing the object, so retry.
		return failure.Temporaryf("ApplyForbidden", "%s: %w", what, err)
	case NamespaceMissing(err):
		// A child's namespace may be created later (by someone else): retry.
		return failure.Temporaryf("NamespaceNotFound", "%s: %w", what, err)
	}
	return failure.Temporaryf("ApplyFailed", "%s: %w", what, err)
}

// untypablePatch says whether server-side apply refused the object's
// content against its kind's schema (a field the schema lacks, a value of
// the wrong type). The API server answers that as a 500 (through 1.32, also
// with fieldValidation=Strict, which it checks only after the apply), yet
// the same content fails the same way every time.
func untypablePatch(err error) bool {
	return apierrors.IsInternalError(err) && strings.Contains(err.Error(), "failed to create typed patch object")
}

// NamespaceTerminating says whether the API server refused to create an
// object because its namespace is being deleted: nothing can be created
// there again.
func NamespaceTerminating(err error) bool {
	return apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}

// NamespaceMissing says whether the API server refused a write because the
// object's namespace does not exist.
func NamespaceMissing(err error) bool {
	var st apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	return d != nil && d.Kind == "namespaces"
}

func describe(obj *unstructured.Unstructured) string {
	name := obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return obj.GetKind() + " " + name
}

func ptr[T any](v T) *T { return &v }

// Mapping resolves a declared apiVersion/kind to its resource.
func Mapping(mapper meta.RESTMapper, apiVersion, kind string) (*meta.RESTMapping, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, failure.Permanentf("InvalidSpec", "apiVersion %q: %w", apiVersion, err)
	}
	m, err := mapper.RESTMapping(gv.WithKind(kind).GroupKind(), gv.Version)
	if err != nil {
		return nil, mappingFailure(apiVersion+" "+kind, err)
	}
	return m, nil
}
