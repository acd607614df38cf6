package main

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/inspect"
	"github.com/opgate/opgate/gateway/spec"
)

// watchedObject reads the object key names (see object) and checks that
// r's operator watches it, as the gateway's informer selects: status and
// reconcile say so rather than show or annotate an object no gateway of
// that operator looks at.
func (c *cluster) watchedObject(ctx context.Context, r registered, key string) (dynamic.ResourceInterface, *unstructured.Unstructured, error) {
	m, id, err := c.object(r.op, key)
	if err != nil {
		return nil, nil, err
	}
	res := c.dyn.Resource(m.Resource).Namespace(id.Namespace)
	obj, err := res.Get(ctx, id.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("%s %s not found", r.op.Spec.Watch.Kind, id)
	}
	if err != nil {
		return nil, nil, explain(err, "get "+r.op.Spec.Watch.Kind+" "+id.String())
	}
	if !inspect.Selects(r.op, obj) {
		return nil, nil, fmt.Errorf("%s %s is not watched by %s (spec.watch.namespaces or labelSelector)", r.op.Spec.Watch.Kind, id, r.Name)
	}
	return res, obj, nil
}

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
