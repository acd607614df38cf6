package main

import (
	"fmt"
	"reflect"
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/rbac"
)

// childScopes is what the engine learns from discovery, known offline:
// whether each kind of the answer's children is cluster-scoped, from
// client-go's built-in kinds and the --crd files (the resolver `gateway
// rbac` uses offline). Kinds it cannot resolve are returned apart, as
// "apiVersion/Kind", sorted: CheckChildren takes them as namespaced.
func childScopes(kinds rbac.Resolver, children []*unstructured.Unstructured) (check.Scopes, []string) {
	scopes := check.Scopes{}
	var unknown []string
	for _, c := range children {
		if c == nil || c.GetAPIVersion() == "" || c.GetKind() == "" {
			continue // refused by CheckChildren
		}
		gvk := c.GroupVersionKind()
		res, err := kinds.Resolve(gvk)
		if err != nil { // rbac.ErrUnresolved: offline, nothing else fails
			if k := c.GetAPIVersion() + "/" + c.GetKind(); !slices.Contains(unknown, k) {
				unknown = append(unknown, k)
			}
			continue
		}
		scopes[gvk.GroupKind()] = !res.Namespaced
	}
	slices.Sort(unknown)
	return scopes, unknown
}

// crdOf returns the CRD defining gk, or nil.
func crdOf(crds []*apiextensionsv1.CustomResourceDefinition, gk schema.GroupKind) *apiextensionsv1.CustomResourceDefinition {
	for _, c := range crds {
		if c.Spec.Group == gk.Group && c.Spec.Names.Kind == gk.Kind {
			return c
		}
	}
	return nil
}

// builtinKeepsStatus says whether a built-in kind keeps a status, known
// when client-go's scheme has the kind. The engine asks discovery for
// <resource>/status; offline, the Go type's status field stands for it
// (TestOfflineStatusSubresourcesAgreeWithTheAPIServer holds the two
// together).
func builtinKeepsStatus(gvk schema.GroupVersionKind) (keeps, known bool) {
	obj, err := scheme.Scheme.New(gvk)
	if err != nil {
		return false, false
	}
	t := reflect.TypeOf(obj)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	_, keeps = t.FieldByName("Status")
	return keeps, true
}

// noStatusError is the engine's InvalidStatus refusal of a status for a
// built-in kind that keeps none, or nil when the kind keeps one or is not
// built in (a CRD's status is checked by its schema).
func noStatusError(parent *unstructured.Unstructured) error {
	gvk := parent.GroupVersionKind()
	if keeps, known := builtinKeepsStatus(gvk); keeps || !known {
		return nil
	}
	return check.NoStatusError(gvk.Kind, fmt.Sprintf("client-go's %s has no status field: its API serves no status subresource", gvk.GroupVersion().WithKind(gvk.Kind)))
}
