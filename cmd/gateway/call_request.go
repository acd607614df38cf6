package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opgate/opgate/callbacks/essence"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/rbac"
	"github.com/opgate/opgate/gateway/spec"
)

// loadObjects reads the object files and the CRD.
func (o *callOptions) loadObjects(t *callTarget) error {
	parents, err := readObjects(o.objectFile, "--object")
	if err != nil {
		return err
	}
	if len(parents) != 1 {
		return usageErrorf("--object: want exactly one object, got %d", len(parents))
	}
	t.parent = parents[0]
	if w := t.watch; w != nil && (t.parent.GetAPIVersion() != w.APIVersion || t.parent.GetKind() != w.Kind) {
		// The gateway reads the objects of the watched kind at its version only.
		return usageErrorf("--object is a %s %s, but operator %s watches %s %s", t.parent.GetKind(), t.parent.GetAPIVersion(), t.operator, w.Kind, w.APIVersion)
	}
	if o.oldFile != "" {
		if t.event != spec.EventUpdate {
			return usageErrorf("--old: the gateway sends old with update only, not %s", t.event)
		}
		olds, err := readObjects(o.oldFile, "--old")
		if err != nil {
			return err
		}
		if len(olds) != 1 {
			return usageErrorf("--old: want exactly one object, got %d", len(olds))
		}
		t.old = olds[0]
	}
	for _, in := range []struct {
		file, flag string
		into       *[]*unstructured.Unstructured
	}{{o.childrenFile, "--children", &t.children}, {o.relatedFile, "--related", &t.related}} {
		if in.file == "" {
			continue
		}
		if t.event != spec.EventSync && t.event != spec.EventDelete {
			return usageErrorf("%s: the gateway sends children and related objects with sync and delete only, not %s", in.flag, t.event)
		}
		if *in.into, err = readObjects(in.file, in.flag); err != nil {
			return err
		}
	}
	return o.loadCRDs(t)
}

// loadCRDs reads the --crd files: the watched kind's CRD checks the status,
// the others give the scope of child kinds. A CRD of neither is refused: it
// would check nothing.
func (o *callOptions) loadCRDs(t *callTarget) error {
	crds, err := loadCRDs(o.crdFiles)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	t.kinds = rbac.NewOffline(crds...)
	parentGK := t.parent.GroupVersionKind().GroupKind()
	for _, crd := range crds {
		gk := schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}
		isChild := slices.ContainsFunc(t.declared, func(d spec.ChildSpec) bool {
			gv, err := schema.ParseGroupVersion(d.APIVersion)
			return err == nil && gv.WithKind(d.Kind).GroupKind() == gk
		})
		if gk != parentGK && !isChild {
			return usageErrorf("--crd: CRD %s defines %s, but the object is a %s and no declared child kind is a %s", crd.Name, gk, parentGK, gk)
		}
	}
	if crd := crdOf(crds, parentGK); crd != nil {
		t.statusChecker, err = newStatusChecker(crd, t.parent)
	}
	return err
}

// readObjects reads every object of a YAML or JSON file; a List stands for
// its items, so `kubectl get -o yaml` output works as it is.
func readObjects(path, flag string) ([]*unstructured.Unstructured, error) {
	if path == "" {
		return nil, usageErrorf("%s is required", flag)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErrorf("%s: %w", flag, err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, usageErrorf("%s %s: document %d: %w", flag, path, doc, err)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue // an empty document
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, usageErrorf("%s %s: document %d: %w", flag, path, doc, err)
		}
		items := []*unstructured.Unstructured{u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, usageErrorf("%s %s: document %d: %w", flag, path, doc, err)
			}
			items = items[:0]
			for i := range list.Items {
				items = append(items, &list.Items[i])
			}
		}
		for _, it := range items {
			if it.GetAPIVersion() == "" || it.GetName() == "" {
				return nil, usageErrorf("%s %s: document %d: %s object needs apiVersion, kind and metadata.name", flag, path, doc, it.GetKind())
			}
		}
		out = append(out, items...)
	}
}

// newStatusChecker builds the checker of the parent's version.
func newStatusChecker(crd *apiextensionsv1.CustomResourceDefinition, parent *unstructured.Unstructured) (*check.StatusChecker, error) {
	gv, err := schema.ParseGroupVersion(parent.GetAPIVersion())
	if err != nil {
		return nil, usageErrorf("--object: %w", err)
	}
	checker, err := check.NewStatusChecker(crd, gv.Version)
	if err != nil {
		return nil, usageErrorf("--crd %s: %w", crd.Name, err)
	}
	return checker, nil
}

// buildRequest builds the request as the gateway's engine does; the
// client sets the deadline.
func buildRequest(t *callTarget, now time.Time) *callbacks.Request {
	req := &callbacks.Request{
		APIVersion: callbacks.APIVersion,
		Kind:       callbacks.RequestKind,
		UID:        essence.Digest([]string{t.operator, t.callback, string(t.parent.GetUID()), string(t.event), strconv.FormatInt(now.UnixNano(), 10)}),
		Event:      callbacks.Event(t.event),
		Operator:   t.operator,
		Callback:   t.callback,
		Attempt:    1,
		Object:     withoutStateAnnotations(t.parent),
	}
	if t.old != nil {
		old := essence.Of(t.old)
		req.Old = essence.OldObject(t.parent, old)
		req.Diff = essence.Diff(old, essence.Of(t.parent))
	} else if t.event == spec.EventUpdate {
		// What the gateway sends when it did not keep the last handled object.
		req.OldUnavailable = true
	}
	if t.event == spec.EventSync || t.event == spec.EventDelete {
		var childKinds []string
		for _, d := range t.declared {
			childKinds = append(childKinds, d.APIVersion+"/"+d.Kind)
		}
		req.Children = byKind(t.children, t.parent, childKinds)
		req.Related = byKind(t.related, t.parent, t.relatedKinds)
	}
	return req
}

// byKind files objects by "apiVersion/Kind", then by name ("namespace/name"
// outside the parent's namespace); kinds get an entry even when empty.
func byKind(objs []*unstructured.Unstructured, parent *unstructured.Unstructured, kinds []string) map[string]map[string]*unstructured.Unstructured {
	out := map[string]map[string]*unstructured.Unstructured{}
	for _, k := range kinds {
		out[k] = map[string]*unstructured.Unstructured{}
	}
	for _, o := range objs {
		key := o.GetAPIVersion() + "/" + o.GetKind()
		if out[key] == nil {
			out[key] = map[string]*unstructured.Unstructured{}
		}
		out[key][nameIn(o, parent)] = o
	}
	return out
}

func nameIn(o, parent *unstructured.Unstructured) string {
	if o.GetNamespace() != "" && o.GetNamespace() != parent.GetNamespace() {
		return o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetName()
}

// withoutStateAnnotations hides the gateway's bookkeeping, as it does.
func withoutStateAnnotations(obj *unstructured.Unstructured) *unstructured.Unstructured {
	out := obj.DeepCopy()
	ann := out.GetAnnotations()
	for k := range ann {
		if strings.HasPrefix(k, essence.OwnPrefix+"state.") {
			delete(ann, k)
		}
	}
	out.SetAnnotations(ann)
	return out
}
