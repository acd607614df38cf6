package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/decide"
)

func newReconcileCommand() *cobra.Command {
	var k kubeFlags
	cmd := &cobra.Command{
		Use:   "reconcile OPERATOR [NAMESPACE/]NAME",
		Short: "Ask the gateway to end an object's backoff wait and run its due callbacks now",
		Long: `reconcile sets the annotation ` + decide.ReconcileRequestAnnotation + ` to the current
time (RFC3339), as kubectl annotate would. The gateway then ends any backoff
wait of the object, calls its due callbacks, and its sync and resume
callbacks where the operator has them, once; each value fires once.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(&k)
			if err != nil {
				return err
			}
			id, value, err := c.requestReconcile(cmd.Context(), args[0], args[1], time.Now())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s=%s\n", args[0], id, decide.ReconcileRequestAnnotation, value)
			return err
		},
	}
	k.add(cmd)
	return cmd
}

// requestReconcile annotates the object; the value is the time to the
// second, a finer one when the annotation holds that already, so that a second request
// within the same second still fires. It returns the object's name, its
// namespace resolved, with the value.
func (c *cluster) requestReconcile(ctx context.Context, operator, key string, now time.Time) (cache.ObjectName, string, error) {
	r, err := c.operator(ctx, operator)
	if err != nil {
		return cache.ObjectName{}, "", err
	}
	if err := r.usable(); err != nil {
		return cache.ObjectName{}, "", err
	}
	res, obj, err := c.watchedObject(ctx, r, key)
	if err != nil {
		return cache.ObjectName{}, "", err
	}
	id := cache.MetaObjectToName(obj)
	value := now.UTC().Format(time.RFC3339)
	if obj.GetAnnotations()[decide.ReconcileRequestAnnotation] == value {
		value = now.UTC().Format(time.RFC3339Nano)
	}
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{decide.ReconcileRequestAnnotation: value}}})
	if _, err := res.Patch(ctx, id.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: "gateway-reconcile"}); err != nil {
		return id, "", explain(err, "annotate "+r.op.Spec.Watch.Kind+" "+id.String())
	}
	return id, value, nil
}
