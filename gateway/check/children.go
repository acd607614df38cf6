// Package check is the "check" arrow between calling a handler and applying
// its answer (docs/contract.md, "Response"): it refuses children the registration does not
// allow, validates a status patch against the CRD's schema the way the API
// server would, and computes the field diff of two essences. It is pure
// logic: callers pass in what they fetched, nothing here talks to the API.
package check

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// OperatorLabel marks every child with the operator that applied it; the
// gateway finds its children through it (docs/architecture.md, "State kept in the cluster").
const OperatorLabel = "opgate.dev/operator"

// OwnerUIDLabel names the parent (by UID) of a child the garbage collector
// cannot tie to it: one in another namespace than its namespaced parent, or
// a cluster-scoped one. Such children carry no ownerReference; the gateway
// finds them by this label and deletes them itself before letting the parent
// go (docs/contract.md, "Children").
const OwnerUIDLabel = "opgate.dev/owner-uid"

// ReasonChildRefused is the failure reason of a refused children list.
const ReasonChildRefused = "ChildRefused"

// Scopes maps each declared child kind to whether it is cluster-scoped, as
// discovery says (offline, `gateway call` says from built-in kinds and
// CRD files). A kind missing from it (a scope nobody knows) is taken as
// namespaced, and a namespaced child without a namespace under a
// cluster-scoped parent is then not refused.
type Scopes map[schema.GroupKind]bool

// CheckChildren checks the children a handler answered against the
// registration and returns them as normalized deep copies: a namespaced
// child without a namespace gets the parent's when the parent is namespaced;
// a cluster-scoped child loses any namespace (the API server ignores it, and
// keeping it would make the child's name differ from the observed one). The
// input is never modified.
//
// One bad child refuses the whole list (docs/contract.md, "Response": nothing of that response
// is applied), so the error is a permanent ChildRefused failure naming every
// offending child and every reason, letting the handler author fix them all
// at once. operatorName is the operator the response belongs to; a child may
// carry the OperatorLabel only with that value.
func CheckChildren(parent *unstructured.Unstructured, children []*unstructured.Unstructured, declared []spec.ChildSpec, scopes Scopes, operatorName string) ([]*unstructured.Unstructured, error) {
	if parent == nil {
		return nil, fmt.Errorf("check children: parent is nil")
	}
	parentNS := parent.GetNamespace()
	out := make([]*unstructured.Unstructured, 0, len(children))
	var problems []string
	// firstIndex remembers the first child with a given identity so that a
	// duplicate names the child it collides with.
	firstIndex := make(map[childKey]int, len(children))
	self, selfOK := identity(parent)

	for i, in := range children {
		if in == nil {
			problems = append(problems, fmt.Sprintf("children[%d]: is null", i))
			continue
		}
		child := in.DeepCopy()
		cluster, known := scopes[child.GroupVersionKind().GroupKind()]
		switch {
		case cluster:
			child.SetNamespace("")
		case parentNS != "" && child.GetNamespace() == "":
			child.SetNamespace(parentNS)
		}
		out = append(out, child)

		reasons := childProblems(child, parent, declared, operatorName)
		if known && !cluster && parentNS == "" && child.GetNamespace() == "" {
			reasons = append(reasons, "metadata.namespace is required: the kind is namespaced and the parent is cluster-scoped, so there is no namespace to default to")
		}
		if key, ok := identity(child); ok {
			// Applied, it would overwrite the parent by the children's
			// path and make it its own owner (an ownerReference to itself).
			if selfOK && key == self {
				reasons = append(reasons, "is the parent itself: a parent cannot be its own child")
			}
			if j, dup := firstIndex[key]; dup {
				reasons = append(reasons, fmt.Sprintf("duplicates children[%d]", j))
			} else {
				firstIndex[key] = i
			}
		}
		if len(reasons) > 0 {
			problems = append(problems, fmt.Sprintf("children[%d] %s: %s", i, describe(child), strings.Join(reasons, ", ")))
		}
	}
	if len(problems) > 0 {
		return nil, failure.Permanentf(ReasonChildRefused, "response refused, nothing applied: %s", strings.Join(problems, "; "))
	}
	return out, nil
}

// childKey identifies an object for duplicate detection. It uses the group,
// not the apiVersion, because apps/v1 and apps/v1beta1 objects of the same
// name are the same object and would fight over it in server-side apply.
type childKey struct {
	group, kind, namespace, name string
}

// identity returns the child's key, or false when the child has no usable
// apiVersion or name (already reported as its own problem).
func identity(child *unstructured.Unstructured) (childKey, bool) {
	gv, err := schema.ParseGroupVersion(child.GetAPIVersion())
	if err != nil || child.GetName() == "" {
		return childKey{}, false
	}
	return childKey{gv.Group, child.GetKind(), child.GetNamespace(), child.GetName()}, true
}

// rbacGroup's kinds take any name that is a path segment, as the API server
// validates them ("myapp:reader" is the usual ClusterRole name).
const rbacGroup = "rbac.authorization.k8s.io"

// nameProblems says what is wrong with a child's name, by the API server's
// rule for its kind: a path segment for RBAC kinds, a DNS-1123 subdomain
// (the rule of nearly every other kind and of custom resources) otherwise.
// A kind with a stricter rule (a Service's DNS-1035 label) is left to the
// API server, which refuses the name (ApplyRejected).
func nameProblems(child *unstructured.Unstructured, name string) []string {
	if gv, err := schema.ParseGroupVersion(child.GetAPIVersion()); err == nil && gv.Group == rbacGroup {
		return content.IsPathSegmentName(name)
	}
	return validation.IsDNS1123Subdomain(name)
}

// childProblems lists everything wrong with one (already defaulted) child.
func childProblems(child, parent *unstructured.Unstructured, declared []spec.ChildSpec, operatorName string) []string {
	var reasons []string
	decl, ok := findDeclared(declared, child.GetAPIVersion(), child.GetKind())
	if !ok {
		reasons = append(reasons, "apiVersion/kind not declared in spec.children")
	}

	switch name := child.GetName(); {
	case name == "":
		// Children are matched to the desired set by name, so a
		// generateName child could never be found again.
		reasons = append(reasons, "metadata.name is required (generateName is not supported)")
	default:
		if errs := nameProblems(child, name); len(errs) > 0 {
			reasons = append(reasons, fmt.Sprintf("metadata.name %q is invalid: %s", name, strings.Join(errs, ", ")))
		}
	}

	ns, parentNS := child.GetNamespace(), parent.GetNamespace()
	if ns != "" {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			reasons = append(reasons, fmt.Sprintf("metadata.namespace %q is invalid: %s", ns, strings.Join(errs, ", ")))
		}
	}
	// A cluster-scoped parent may own children anywhere; only a namespaced
	// parent confines them to its namespace. A cluster-scoped child (no
	// namespace once checked) is allowed by declaring its kind.
	if parentNS != "" && ns != "" && ns != parentNS && ok && !decl.AllowCrossNamespace {
		reasons = append(reasons, fmt.Sprintf("namespace %q differs from the parent's %q and allowCrossNamespace is not set", ns, parentNS))
	}

	for _, ref := range child.GetOwnerReferences() {
		if !refersTo(ref, parent) {
			reasons = append(reasons, fmt.Sprintf("sets an ownerReference to %s %q (the gateway sets the owner)", ref.Kind, ref.Name))
		}
	}
	// The unstructured getters return nil for a malformed map, which would
	// hide a wrong operator label and make Decorate drop the handler's labels.
	for _, field := range []string{"labels", "annotations"} {
		if _, _, err := unstructured.NestedStringMap(child.Object, "metadata", field); err != nil {
			reasons = append(reasons, fmt.Sprintf("metadata.%s must map strings to strings", field))
		}
	}
	if v, set := child.GetLabels()[OperatorLabel]; set && v != operatorName {
		reasons = append(reasons, fmt.Sprintf("sets label %s=%q, which the gateway owns", OperatorLabel, v))
	}
	if v, set := child.GetLabels()[OwnerUIDLabel]; set && v != string(parent.GetUID()) {
		reasons = append(reasons, fmt.Sprintf("sets label %s=%q, which the gateway owns", OwnerUIDLabel, v))
	}
	return reasons
}

func findDeclared(declared []spec.ChildSpec, apiVersion, kind string) (spec.ChildSpec, bool) {
	for _, d := range declared {
		if d.APIVersion == apiVersion && d.Kind == kind {
			return d, true
		}
	}
	return spec.ChildSpec{}, false
}

// refersTo says whether an ownerReference a handler wrote points at the
// parent. Handlers rarely know the parent's UID, so a reference without one
// is matched by apiVersion, kind and name.
func refersTo(ref metav1.OwnerReference, parent *unstructured.Unstructured) bool {
	if ref.UID != "" {
		return ref.UID == parent.GetUID()
	}
	return ref.APIVersion == parent.GetAPIVersion() && ref.Kind == parent.GetKind() && ref.Name == parent.GetName()
}

// describe names a child in error messages: apiVersion/kind namespace/name.
func describe(child *unstructured.Unstructured) string {
	name := child.GetName()
	if name == "" {
		name = "<unnamed>"
	}
	if ns := child.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	gvk := child.GetAPIVersion() + "/" + child.GetKind()
	if child.GetAPIVersion() == "" || child.GetKind() == "" {
		gvk = fmt.Sprintf("apiVersion=%q kind=%q", child.GetAPIVersion(), child.GetKind())
	}
	return fmt.Sprintf("%s %q", gvk, name)
}

// Decorate prepares a checked child for server-side apply: it makes the
// parent its controller owner, labels it with the operator, and strips the
// fields the server sets (a handler that echoes an observed child sends them
// back, and server-side apply rejects managedFields and treats
// resourceVersion/uid as preconditions that would fail on the next change).
//
// A child in another namespace than its namespaced parent, or a
// cluster-scoped one (no namespace), gets no ownerReference: the garbage
// collector treats a cross-namespace owner as absent and would delete the
// child, and never collects a cluster-scoped child of a namespaced owner.
// Such children are labelled OwnerUIDLabel instead; see TrackedByLabel.
func Decorate(child, parent *unstructured.Unstructured, operatorName string) {
	for _, f := range [][]string{
		{"status"},
		{"metadata", "resourceVersion"},
		{"metadata", "uid"},
		{"metadata", "managedFields"},
		{"metadata", "creationTimestamp"},
		{"metadata", "generation"},
		{"metadata", "selfLink"},
		{"metadata", "deletionTimestamp"},
		{"metadata", "deletionGracePeriodSeconds"},
	} {
		unstructured.RemoveNestedField(child.Object, f...)
	}

	labels := child.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[OperatorLabel] = operatorName
	if TrackedByLabel(child, parent) {
		labels[OwnerUIDLabel] = string(parent.GetUID())
		child.SetLabels(labels)
		child.SetOwnerReferences(nil)
		return
	}
	delete(labels, OwnerUIDLabel) // the ownerReference is the way to the parent
	child.SetLabels(labels)
	// Exactly one reference: the handler may not add owners (CheckChildren
	// refuses that), and an object may have only one controller.
	child.SetOwnerReferences([]metav1.OwnerReference{ControllerRef(parent)})
}

// TrackedByLabel says whether a checked child belongs to its parent through
// OwnerUIDLabel rather than an ownerReference: the parent is namespaced and
// the child is not in its namespace (another one, or none: cluster-scoped).
func TrackedByLabel(child, parent *unstructured.Unstructured) bool {
	return parent.GetNamespace() != "" && child.GetNamespace() != parent.GetNamespace()
}

// ControllerRef is the ownerReference the gateway puts on every child.
func ControllerRef(parent *unstructured.Unstructured) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion:         parent.GetAPIVersion(),
		Kind:               parent.GetKind(),
		Name:               parent.GetName(),
		UID:                parent.GetUID(),
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}
}
