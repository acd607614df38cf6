package rbac

import (
	"errors"
	"fmt"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// Resource is what a kind resolves to.
type Resource struct {
	Group      string
	Resource   string // plural, lower case
	Namespaced bool
}

// Resolver maps a kind to its resource; a meta.RESTMapper from discovery
// is one (see MapperResolver), Offline another.
type Resolver interface {
	Resolve(gvk schema.GroupVersionKind) (Resource, error)
}

// ErrUnresolved is returned (wrapped) for a kind a Resolver does not know.
var ErrUnresolved = errors.New("kind cannot be resolved")

// MapperResolver resolves with a RESTMapper, e.g. the API server's discovery.
type MapperResolver struct{ Mapper meta.RESTMapper }

// Resolve implements Resolver.
func (m MapperResolver) Resolve(gvk schema.GroupVersionKind) (Resource, error) {
	mapping, err := m.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return Resource{}, fmt.Errorf("%w: %s is not served by the API server (is its CRD installed?)", ErrUnresolved, gvkString(gvk))
	}
	if err != nil {
		return Resource{}, fmt.Errorf("resolve %s: %w", gvkString(gvk), err)
	}
	return Resource{Group: gvk.Group, Resource: mapping.Resource.Resource, Namespaced: mapping.Scope.Name() == meta.RESTScopeNameNamespace}, nil
}

// Offline resolves without an API server: Kubernetes' built-in kinds (from
// client-go's scheme) and the kinds of the CRDs it was given.
type Offline struct {
	crds map[schema.GroupKind]Resource
}

// NewOffline returns an Offline resolver knowing the given CRDs' kinds.
func NewOffline(crds ...*apiextensionsv1.CustomResourceDefinition) *Offline {
	o := &Offline{crds: map[schema.GroupKind]Resource{}}
	for _, c := range crds {
		gk := schema.GroupKind{Group: c.Spec.Group, Kind: c.Spec.Names.Kind}
		o.crds[gk] = Resource{Group: c.Spec.Group, Resource: c.Spec.Names.Plural, Namespaced: c.Spec.Scope == apiextensionsv1.NamespaceScoped}
	}
	return o
}

// clusterScopedBuiltins are the built-in kinds that are not namespaced
// (TestOfflineKindScopesAgreeWithTheAPIServer, in cmd/gateway, holds it to
// the API server's discovery).
var clusterScopedBuiltins = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ComponentStatus": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true,
	"StorageClass": true, "VolumeAttachment": true, "CSIDriver": true, "CSINode": true,
	"PriorityClass": true, "RuntimeClass": true, "IngressClass": true,
	"ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"CertificateSigningRequest": true, "APIService": true, "FlowSchema": true,
	"PriorityLevelConfiguration": true, "SelfSubjectReview": true, "TokenReview": true,
	"SelfSubjectAccessReview": true, "SelfSubjectRulesReview": true, "SubjectAccessReview": true,
	"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true,
	"DeviceClass": true, "ResourceSlice": true, "IPAddress": true, "ServiceCIDR": true,
	"StorageVersion": true, "VolumeAttributesClass": true,
}

// Resolve implements Resolver.
func (o *Offline) Resolve(gvk schema.GroupVersionKind) (Resource, error) {
	if r, ok := o.crds[gvk.GroupKind()]; ok {
		return r, nil
	}
	if scheme.Scheme.Recognizes(gvk) {
		plural, _ := meta.UnsafeGuessKindToResource(gvk)
		return Resource{Group: gvk.Group, Resource: plural.Resource, Namespaced: !clusterScopedBuiltins[gvk.Kind]}, nil
	}
	return Resource{}, fmt.Errorf("%w offline: %s is not a built-in kind and no CustomResourceDefinition given defines it; "+
		"pass its CRD file with --crd, or resolve against a cluster that serves it with --discover (or --from-cluster)", ErrUnresolved, gvkString(gvk))
}

func gvkString(gvk schema.GroupVersionKind) string {
	return strings.TrimPrefix(gvk.GroupVersion().String()+", Kind="+gvk.Kind, "/")
}
