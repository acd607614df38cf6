package rbac

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/gateway/spec"
)

var operatorResource = schema.GroupVersionResource{Group: spec.Group, Version: spec.Version, Resource: spec.Resource}

// ClusterOperators lists the WebhookOperators in the cluster; one that
// does not decode is reported by name.
func ClusterOperators(ctx context.Context, dyn dynamic.Interface) ([]*spec.WebhookOperator, error) {
	list, err := dyn.Resource(operatorResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list WebhookOperators: %w", err)
	}
	var ops []*spec.WebhookOperator
	for i := range list.Items {
		op := &spec.WebhookOperator{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, op); err != nil {
			return nil, fmt.Errorf("WebhookOperator %s: %w", list.Items[i].GetName(), err)
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return nil, errors.New("no WebhookOperators in the cluster")
	}
	return ops, nil
}
