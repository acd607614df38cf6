package main

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/spec"
)

// object resolves key, NAMESPACE/NAME or NAME, to an object of op's
// watched kind as kubectl reads a name: a bare NAME of a namespaced kind is
// in -n's namespace, else the kubeconfig context's; a cluster-scoped kind
// has none.
func (c *cluster) object(op *spec.WebhookOperator, key string) (*meta.RESTMapping, cache.ObjectName, error) {
	ns, name, qualified := strings.Cut(key, "/")
	if !qualified {
		ns, name = "", key
	}
	if name == "" || strings.Contains(name, "/") || qualified && ns == "" {
		return nil, cache.ObjectName{}, fmt.Errorf("%q: want NAMESPACE/NAME or NAME", key)
	}
	m, err := c.watchedResource(op)
	if err != nil {
		return nil, cache.ObjectName{}, err
	}
	switch {
	case m.Scope.Name() != meta.RESTScopeNameNamespace:
		if qualified || c.namespaceFlag != "" {
			return nil, cache.ObjectName{}, fmt.Errorf("%s is cluster-scoped: give its NAME alone, without a namespace", watchedKind(op))
		}
		return m, cache.NewObjectName("", name), nil
	case !qualified:
		ns = c.namespace
	case c.namespaceFlag != "" && c.namespaceFlag != ns:
		return nil, cache.ObjectName{}, fmt.Errorf("%s names namespace %s, -n says %s", key, ns, c.namespaceFlag)
	}
	return m, cache.NewObjectName(ns, name), nil
}
