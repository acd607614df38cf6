package engine

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// ReasonSecretNotAllowed is the Ready reason of an operator refused because
// one of its handlers references a Secret outside the gateway's Secret
// namespace (--secret-namespace). Whoever may create a WebhookOperator
// chooses the handler URL, so a reference to any Secret would let them
// send its value anywhere: the gateway reads Secrets in one namespace only,
// which its RBAC can then be limited to.
const ReasonSecretNotAllowed = "SecretNotAllowed"

// checkSecretNamespaces refuses, permanently, an operator whose handlers
// reference a Secret outside allowed, naming every such reference, its
// field and the allowed namespace. An empty allowed accepts all.
func checkSecretNamespaces(op *spec.WebhookOperator, allowed string) error {
	if allowed == "" {
		return nil
	}
	refused := refusedSecretRefs("spec.handler", op.Spec.Handler.Auth, allowed)
	for i, cb := range op.Spec.Callbacks {
		if cb.Handler != nil {
			refused = append(refused, refusedSecretRefs(fmt.Sprintf("spec.callbacks[%d].handler", i), cb.Handler.Auth, allowed)...)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return failure.Permanentf(ReasonSecretNotAllowed,
		"%s: this gateway reads handler Secrets only in namespace %q (--secret-namespace); the operator is not started and nothing is sent to its handler",
		strings.Join(refused, "; "), allowed)
}

func refusedSecretRefs(path string, a *spec.AuthSpec, allowed string) []string {
	if a == nil {
		return nil
	}
	type ref struct{ field, namespace, name string }
	var refs []ref
	if r := a.HMACSecretRef; r != nil {
		refs = append(refs, ref{"hmacSecretRef", r.Namespace, r.Name})
	}
	if r := a.BearerTokenSecretRef; r != nil {
		refs = append(refs, ref{"bearerTokenSecretRef", r.Namespace, r.Name})
	}
	if r := a.ClientCertSecretRef; r != nil {
		refs = append(refs, ref{"clientCertSecretRef", r.Namespace, r.Name})
	}
	var out []string
	for _, r := range refs {
		if r.namespace != allowed {
			out = append(out, fmt.Sprintf("Secret %q in namespace %q (%s.auth.%s) is outside namespace %q",
				r.name, r.namespace, path, r.field, allowed))
		}
	}
	return out
}

var secretsResource = schema.GroupResource{Resource: "secrets"}

// checkSecretKinds refuses, permanently, an operator that would send
// Secrets of namespaces other than allowed to its handler: a watched,
// related or child kind that resolves to core Secrets is sent whole,
// data included. Such a kind is accepted only where it provably stays in
// allowed: the watch lists allowed alone (related objects of a namespaced
// kind come from the watched namespaces, children of a namespaced parent stay in its
// namespace unless allowCrossNamespace). Kinds are judged by resource, so
// no spelling of the kind gets around it. An empty allowed accepts all.
func (c *Controller) checkSecretKinds(allowed string) error {
	if allowed == "" {
		return nil
	}
	w := c.op.Spec.Watch
	confined := len(w.Namespaces) == 1 && w.Namespaces[0] == allowed
	isSecret := func(m *meta.RESTMapping) bool { return m.Resource.GroupResource() == secretsResource }
	var refused []string
	if isSecret(c.parent.mapping) && !confined {
		refused = append(refused, "spec.watch")
	}
	for _, rel := range c.related {
		if isSecret(rel.mapping) && !confined {
			refused = append(refused, "spec."+rel.role)
		}
	}
	for _, ch := range c.children {
		if isSecret(ch.mapping) && !(confined && !clusterScoped(c.parent.mapping) && !ch.spec.AllowCrossNamespace) {
			refused = append(refused, "spec."+ch.role)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return failure.Permanentf(ReasonSecretNotAllowed,
		"%s: kind v1 Secret can reach Secrets outside namespace %q, and the handler would receive them whole, data included; this gateway shares Secrets only in namespace %q (--secret-namespace). Limit the operator to it (spec.watch.namespaces: [%s], a namespaced watched kind, no allowCrossNamespace on a Secret child) or remove the Secret kind; the operator is not started and nothing is sent to its handler",
		strings.Join(refused, ", "), allowed, allowed, allowed)
}
