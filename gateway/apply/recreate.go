package apply

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/gateway/failure"
)

// recreateWait bounds how long one pass waits for a replaced child to go
// before giving up for now (the next attempt waits again).
const recreateWait = 10 * time.Second

// deleteForRecreate deletes the existing child so that a changed immutable
// field can be applied, and waits until it is gone. Background propagation:
// without a policy, kinds such as batch/v1 Job orphan their dependents (the
// old Job's pods would keep running) and stay behind the orphan finalizer,
// so the re-apply would hit the old object again.
func deleteForRecreate(ctx context.Context, res dynamic.ResourceInterface, child, existing *unstructured.Unstructured) error {
	name, uid := child.GetName(), existing.GetUID()
	policy := metav1.DeletePropagationBackground
	err := res.Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		Preconditions:     &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return classify(fmt.Sprintf("delete %s for recreate", describe(child)), err)
	}
	var last *unstructured.Unstructured
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, recreateWait, true, func(ctx context.Context) (bool, error) {
		cur, err := res.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, nil // keep polling until the deadline
		}
		last = cur
		return cur.GetUID() != uid, nil
	})
	if err != nil {
		var finalizers []string
		if last != nil {
			finalizers = last.GetFinalizers()
		}
		return failure.Temporaryf("ChildRecreating", "%s is being deleted to be re-created and is not gone after %s (finalizers %v): %w", describe(child), recreateWait, finalizers, err)
	}
	return nil
}
