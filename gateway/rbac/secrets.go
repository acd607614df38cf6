package rbac

import (
	"errors"
	"fmt"
	"strings"
)

// SecretGrant is a permission on core Secrets that an operator's watched,
// child or related kind needs.
type SecretGrant struct {
	Operator string
	Field    string // "watch", "children[0]", "related[1]"
	// Namespace is the Role's namespace; "" is the ClusterRole.
	Namespace string
	Verbs     []string
}

func isSecrets(r Resource) bool { return r.Group == "" && r.Resource == "secrets" }

// CheckSecrets refuses the grants on Secrets outside secretNamespace (all of
// them when it is ""), naming each one. The gateway sends watched, child and
// related objects whole to the operator's handler, whose URL the operator's
// author chooses: rules reading Secrets beyond the gateway's
// --secret-namespace, pasted into the chart, would hand them any Secret
// there. The gateway itself refuses such operators (SecretNotAllowed).
func (r Rules) CheckSecrets(secretNamespace string) error {
	var errs []error
	for _, s := range r.Secrets {
		if s.Namespace != "" && s.Namespace == secretNamespace {
			continue
		}
		where := "cluster-wide"
		if s.Namespace != "" {
			where = fmt.Sprintf("in namespace %q", s.Namespace)
		}
		allowed := "no --secret-namespace was given"
		if secretNamespace != "" {
			allowed = fmt.Sprintf("the Secret namespace is %q", secretNamespace)
		}
		errs = append(errs, fmt.Errorf("WebhookOperator %s: %s: %s on secrets %s would send those Secrets, data included, to its handler (%s)",
			s.Operator, s.Field, strings.Join(s.Verbs, ","), where, allowed))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w\nthe gateway refuses these operators (SecretNotAllowed) unless spec.watch.namespaces is the Secret namespace alone: "+
		"fix the operators and use --namespace-scoped --secret-namespace NS, or pass --allow-secrets to print these rules anyway", errors.Join(errs...))
}
