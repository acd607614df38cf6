package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	kjson "sigs.k8s.io/json"
)

// Writes whose answer the engine needs only in part (the pass's last
// write, a child nobody reads again in the pass) go through the REST
// client the dynamic client was made from, asking the API server for the
// object's metadata alone (PartialObjectMetadata, as the metadata client
// does): the server sends less, and decoding it costs a fraction of a
// whole object decoded into maps. Same client, so the same rate limiter,
// connection, client metrics and Status-to-error decoding.

// metadataOnly is the Accept header of such writes; a server that cannot
// transform the answer sends the whole object, whose metadata is read alike.
const metadataOnly = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

// WithREST returns a copy of a whose metadata-only writes go through rc,
// which must be the REST client a's dynamic client was made from
// (dynamic.New(rc)). Without it they go through the dynamic client and
// decode the whole answer.
func (a *Applier) WithREST(rc rest.Interface) *Applier {
	b := *a
	b.rc = rc
	return &b
}

// target is where the writes to one object go.
type target struct {
	mapping   *meta.RESTMapping
	namespace string
	name      string
	what      string // for errors: "Kind namespace/name"
}

func (a *Applier) targetOf(obj *unstructured.Unstructured) (target, error) {
	m, err := a.mappingOf(obj)
	if err != nil {
		return target{}, err
	}
	return target{mapping: m, namespace: obj.GetNamespace(), name: obj.GetName(), what: describe(obj)}, nil
}

// path is the object's URL path, as the dynamic client builds it.
func (t target) path(subresource string) []string {
	p := append(CollectionPath(t.mapping, t.namespace), t.name)
	if subresource != "" {
		p = append(p, subresource)
	}
	return p
}

// CollectionPath is the URL path of a kind's objects in namespace (all of
// them for "" or a cluster-scoped kind), as the dynamic client builds it.
func CollectionPath(m *meta.RESTMapping, namespace string) []string {
	gvr := m.Resource
	p := make([]string, 0, 8)
	if gvr.Group == "" {
		p = append(p, "api")
	} else {
		p = append(p, "apis", gvr.Group)
	}
	p = append(p, gvr.Version)
	if namespace != "" && m.Scope.Name() != meta.RESTScopeNameRoot {
		p = append(p, "namespaces", namespace)
	}
	return append(p, gvr.Resource)
}

// patchMeta sends one patch and returns the metadata of the object the
// server answered, its errors exactly as the dynamic client returns them.
func (a *Applier) patchMeta(ctx context.Context, t target, pt types.PatchType, body []byte, force bool, subresource string) (*metav1.ObjectMeta, error) {
	if a.rc == nil {
		opts := metav1.PatchOptions{FieldManager: FieldManager}
		if force {
			opts.Force = ptr(true)
		}
		var subs []string
		if subresource != "" {
			subs = []string{subresource}
		}
		out, err := a.resourceFor(t.mapping, t.namespace).Patch(ctx, t.name, pt, body, opts, subs...)
		if err != nil {
			return nil, err
		}
		return ObjectMetaOf(out), nil
	}
	if msgs := rest.IsValidPathSegmentName(t.name); len(msgs) != 0 {
		return nil, fmt.Errorf("invalid resource name %q: %v", t.name, msgs)
	}
	req := a.rc.Patch(pt).AbsPath(t.path(subresource)...).Body(body).
		Param("fieldManager", FieldManager).SetHeader("Accept", metadataOnly)
	if force {
		req = req.Param("force", "true")
	}
	res := req.Do(ctx)
	if err := res.Error(); err != nil {
		return nil, err
	}
	raw, _ := res.Raw()
	return decodeMeta(raw)
}

// answer is what a metadata-only write reads of the server's answer.
type answer struct {
	Kind     string     `json:"kind"`
	Metadata answerMeta `json:"metadata"`
}

// answerMeta skips managedFields: the engine drops them anyway.
type answerMeta struct {
	metav1.ObjectMeta
	ManagedFields skipped `json:"managedFields"`
}

type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// decodeMeta reads the metadata of an answer, taking a failed Status in a
// successful answer as its error, as client-go's Result.Into does. It runs
// for every write, so the common shape of an answer is read by hand
// (metadecode.go); anything else goes through the reflective decoder,
// which gives the same metadata, slower.
func decodeMeta(raw []byte) (*metav1.ObjectMeta, error) {
	if m, ok := decodeMetaFast(raw); ok {
		return m, nil
	}
	return decodeMetaReflect(raw)
}

// decodeMetaReflect is decodeMeta for any answer.
func decodeMetaReflect(raw []byte) (*metav1.ObjectMeta, error) {
	if len(raw) == 0 {
		return nil, errors.New("the API server answered a write with an empty body")
	}
	var ans answer
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &ans); err != nil {
		return nil, fmt.Errorf("decode the API server's answer: %w", err)
	}
	if ans.Kind == "Status" {
		var st metav1.Status
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, fmt.Errorf("decode the API server's answer: %w", err)
		}
		if st.Status != metav1.StatusSuccess {
			return nil, apierrors.FromObject(&st)
		}
	}
	return &ans.Metadata.ObjectMeta, nil
}

// ObjectMetaOf is obj's metadata, without managedFields.
func ObjectMetaOf(obj *unstructured.Unstructured) *metav1.ObjectMeta {
	if obj == nil {
		return nil
	}
	return &metav1.ObjectMeta{
		Name: obj.GetName(), GenerateName: obj.GetGenerateName(), Namespace: obj.GetNamespace(),
		UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(), Generation: obj.GetGeneration(),
		CreationTimestamp: obj.GetCreationTimestamp(), DeletionTimestamp: obj.GetDeletionTimestamp(),
		DeletionGracePeriodSeconds: obj.GetDeletionGracePeriodSeconds(),
		Labels:                     obj.GetLabels(), Annotations: obj.GetAnnotations(),
		OwnerReferences: obj.GetOwnerReferences(), Finalizers: obj.GetFinalizers(),
	}
}

// WithMeta returns obj with its metadata replaced by m (managedFields
// left out) and everything else shared with obj, which is not changed.
func WithMeta(obj *unstructured.Unstructured, m *metav1.ObjectMeta) *unstructured.Unstructured {
	top := make(map[string]any, len(obj.Object))
	for k, v := range obj.Object {
		top[k] = v
	}
	top["metadata"] = metaMap(m)
	return &unstructured.Unstructured{Object: top}
}

// metaMap is m as Unstructured's setters write it (empty strings, a zero
// generation or creation time and nil collections left out; a zero
// deletion time behind its pointer kept, as ""; times in RFC 3339, UTC,
// to the second), built directly: each setter walks the path from the top and
// deep-copies what it was given, 35 allocations for an object's metadata
// of a few. The pass adopts one after every metadata-only write.
func metaMap(m *metav1.ObjectMeta) map[string]any {
	md := make(map[string]any, 13)
	for _, f := range [...]struct{ key, value string }{
		{"name", m.Name}, {"generateName", m.GenerateName}, {"namespace", m.Namespace},
		{"uid", string(m.UID)}, {"resourceVersion", m.ResourceVersion},
	} {
		if f.value != "" {
			md[f.key] = f.value
		}
	}
	if m.Generation != 0 {
		md["generation"] = m.Generation
	}
	if ts, _ := m.CreationTimestamp.MarshalQueryParameter(); ts != "" {
		md["creationTimestamp"] = ts
	}
	if m.DeletionTimestamp != nil {
		ts, _ := m.DeletionTimestamp.MarshalQueryParameter()
		md["deletionTimestamp"] = ts
	}
	if m.DeletionGracePeriodSeconds != nil {
		md["deletionGracePeriodSeconds"] = *m.DeletionGracePeriodSeconds
	}
	if m.Labels != nil {
		md["labels"] = stringMap(m.Labels)
	}
	if m.Annotations != nil {
		md["annotations"] = stringMap(m.Annotations)
	}
	if m.OwnerReferences != nil {
		refs := make([]any, len(m.OwnerReferences))
		for i, r := range m.OwnerReferences {
			ref := map[string]any{"apiVersion": r.APIVersion, "kind": r.Kind, "name": r.Name, "uid": string(r.UID)}
			if r.Controller != nil {
				ref["controller"] = *r.Controller
			}
			if r.BlockOwnerDeletion != nil {
				ref["blockOwnerDeletion"] = *r.BlockOwnerDeletion
			}
			refs[i] = ref
		}
		md["ownerReferences"] = refs
	}
	if m.Finalizers != nil {
		finalizers := make([]any, len(m.Finalizers))
		for i, f := range m.Finalizers {
			finalizers[i] = f
		}
		md["finalizers"] = finalizers
	}
	return md
}

func stringMap(in map[string]string) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// ExistingMeta reads the metadata of the object obj names, nil if there is
// none. It reads at resourceVersion "0": the API server answers from its
// watch cache, without a read of etcd, so the check costs little on the
// path that creates children. That cache may lag by an instant: an object
// made in that instant reads as absent, as it would a moment earlier.
func (a *Applier) ExistingMeta(ctx context.Context, obj *unstructured.Unstructured) (*metav1.ObjectMeta, error) {
	t, err := a.targetOf(obj)
	if err != nil {
		return nil, err
	}
	m, err := a.getMeta(ctx, t, "0")
	if apierrors.IsNotFound(err) {
		return nil, nil // also when its namespace is missing: the apply tells
	}
	if err != nil {
		return nil, classify("read "+t.what, err)
	}
	return m, nil
}
