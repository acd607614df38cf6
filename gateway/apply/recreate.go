package apply

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
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

// immutableChange says whether the API server refused a write as invalid
// only for changing what no update may change, so that deleting the object
// and creating it anew can succeed. Any other cause (a value invalid in
// itself, which a create would refuse as well), a cause of no field error
// type (an admission policy's denial) or no cause at all keeps the object.
func immutableChange(err error) bool {
	var st apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	if d == nil || len(d.Causes) == 0 {
		return false
	}
	for _, c := range d.Causes {
		if !refusesChange(c) {
			return false
		}
	}
	return true
}

// refusesChange says whether one cause refuses a change rather than a value,
// as kube-apiserver v1.32 words it:
//   - field.Invalid whose message ends with a detail that refuses a change:
//     "field is immutable" (validation.FieldImmutableErrorMsg, from
//     ValidateImmutableField: a Job's template, a Deployment's selector),
//     "Value is immutable" (the documented message of a CRD's rule
//     self == oldSelf), "may not change once set" (a Service's clusterIPs,
//     ipFamilies), "cannot change roleRef" (a RoleBinding's); or a CRD
//     transition rule's default message, "failed rule: <rule>" with a rule
//     that reads oldSelf (only an update can break one). The message leads
//     with the new value, which may read anything, so only its end counts.
//   - field.Forbidden whose first line says immutable, update, change or
//     modify (an immutable ConfigMap's data, a Pod's spec but its images, a
//     StatefulSet's spec but its updatable fields, a PriorityClass's value).
//     Its message carries no value, but a Pod's carries a diff after its
//     first line.
func refusesChange(c metav1.StatusCause) bool {
	switch string(c.Type) {
	case string(field.ErrorTypeInvalid):
		for _, end := range changeRefused {
			if strings.HasSuffix(c.Message, end) {
				return true
			}
		}
		i := strings.LastIndex(c.Message, ": failed rule: ")
		return i >= 0 && strings.Contains(c.Message[i:], "oldSelf")
	case string(field.ErrorTypeForbidden):
		detail, _, _ := strings.Cut(c.Message, "\n")
		return changeWords.MatchString(detail)
	}
	return false
}

// changeWords are the words of a Forbidden cause that refuses a change, as
// words: "updateStrategy", "lastUpdated" or "exchange" say nothing of one.
var changeWords = regexp.MustCompile(`\b(immutable|updates?|updated|updating|changes?|changed|changing|modify|modified|modification)\b`)

// changeRefused are the ends of field.Invalid messages that refuse a change.
var changeRefused = []string{" is immutable", ": may not change once set", ": cannot change roleRef"}
