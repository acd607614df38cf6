package apply

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// metav1 names no cause type for field.Forbidden; the server sends its
// error type.
const causeForbidden = metav1.CauseType(field.ErrorTypeForbidden)

// The causes are as kube-apiserver v1.32 gave them to a server-side apply
// (values shortened where the server prints a whole Go struct).
var (
	jobTemplateImmutable = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.template",
		Message: `Invalid value: core.PodTemplateSpec{ObjectMeta:v1.ObjectMeta{Name:""}}: field is immutable`}
	jobBackoffLimitNegative = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.backoffLimit",
		Message: "Invalid value: -1: must be greater than or equal to 0"}
	deploymentSelectorImmutable = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.selector",
		Message: `Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"a":"c"}}: field is immutable`}
	podUpdateForbidden = metav1.StatusCause{Type: causeForbidden, Field: "spec",
		Message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n  core.PodSpec{\n- \t\t\tCommand:    nil,\n+ \t\t\tCommand:    []string{\"sleep\", \"1\"},\n  }\n"}
	podImageWhitespace = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.containers[0].image",
		Message: `Invalid value: " bad": must not have leading or trailing whitespace`}
	statefulSetUpdateForbidden = metav1.StatusCause{Type: causeForbidden, Field: "spec",
		Message: "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"}
	statefulSetReplicasNegative = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.replicas",
		Message: "Invalid value: -1: must be greater than or equal to 0"}
	configMapImmutable = metav1.StatusCause{Type: causeForbidden, Field: "data",
		Message: "Forbidden: field is immutable when `immutable` is set"}
	// A CRD's rule self == oldSelf with message "Value is immutable", as
	// apiextensions-apiserver words it for a string and for an object.
	crdRuleImmutable = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.image",
		Message: `Invalid value: "busybox:2": Value is immutable`}
	crdRuleImmutableObject = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec",
		Message: "Invalid value: Value is immutable"}
	// Wordings of kube-apiserver v1.32's source: a RoleBinding's roleRef, a
	// Service's clusterIPs, a PriorityClass's value, and a CRD transition
	// rule without a message of its own.
	roleRefChanged = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "roleRef",
		Message: `Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"b"}: cannot change roleRef`}
	clusterIPsChanged = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.clusterIPs[0]",
		Message: `Invalid value: []string{"10.0.0.2"}: may not change once set`}
	priorityValueChanged = metav1.StatusCause{Type: causeForbidden, Field: "value",
		Message: "Forbidden: may not be changed in an update."}
	crdTransitionRule = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.image",
		Message: `Invalid value: "string": failed rule: self == oldSelf`}
	// Forbidden causes whose words only contain those of a change.
	forbiddenStrategy = metav1.StatusCause{Type: causeForbidden, Field: "spec.updateStrategy",
		Message: "Forbidden: updateStrategy must be RollingUpdate for this kind"}
	forbiddenLastUpdated = metav1.StatusCause{Type: causeForbidden, Field: "status.lastUpdated",
		Message: "Forbidden: lastUpdated must not be set by clients"}
	// A CRD rule that is no transition rule: the value is at fault.
	crdValueRule = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.size",
		Message: `Invalid value: "integer": failed rule: self < 10`}
	// A ValidatingAdmissionPolicy's denial: 422 with one cause of no type,
	// whatever its message says.
	policyDenied = metav1.StatusCause{
		Message: "ValidatingAdmissionPolicy 'pin' with binding 'pin' denied request: spec.image is immutable"}
	// A plain invalid value whose value, not its detail, reads "immutable".
	invalidValueNamedImmutable = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: "metadata.labels",
		Message: `Invalid value: "field is immutable": a valid label must be an empty string or consist of alphanumeric characters`}
	// Forbidden on create as on update: no change is at fault.
	forbiddenOnCreate = metav1.StatusCause{Type: causeForbidden, Field: "spec.ephemeralContainers",
		Message: "Forbidden: cannot be set on create"}
	requiredMissing = metav1.StatusCause{Type: metav1.CauseTypeFieldValueRequired, Field: "spec.template.spec.containers[0].image",
		Message: "Required value"}
)

func invalid(causes ...metav1.StatusCause) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: 422, Reason: metav1.StatusReasonInvalid,
		Details: &metav1.StatusDetails{Group: "batch", Kind: "Job", Name: "work", Causes: causes},
	}}
}

func TestRecreateOnlyForAChangeNoUpdateMayMake(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err      error
		recreate bool
	}{
		{"a Job's changed pod template", invalid(jobTemplateImmutable), true},
		{"a Deployment's changed selector", invalid(deploymentSelectorImmutable), true},
		{"a Pod's change other than its images", invalid(podUpdateForbidden), true},
		{"a StatefulSet's change other than its updatable fields", invalid(statefulSetUpdateForbidden), true},
		{"an immutable ConfigMap's changed data", invalid(configMapImmutable), true},
		{"a custom resource's field its CRD's rule keeps", invalid(crdRuleImmutable, crdRuleImmutableObject), true},
		{"a RoleBinding's changed roleRef", invalid(roleRefChanged), true},
		{"a Service's changed clusterIPs", invalid(clusterIPsChanged), true},
		{"a PriorityClass's changed value", invalid(priorityValueChanged), true},
		{"a custom resource's field a transition rule keeps, without a message", invalid(crdTransitionRule), true},
		{"the refusal wrapped", fmt.Errorf("apply: %w", invalid(jobTemplateImmutable)), true},

		{"a Job's negative backoffLimit, invalid on create too", invalid(jobBackoffLimitNegative, jobBackoffLimitNegative), false},
		{"a Job's changed template and a negative backoffLimit", invalid(jobBackoffLimitNegative, jobBackoffLimitNegative, jobTemplateImmutable), false},
		{"a Pod's malformed image", invalid(podImageWhitespace, podImageWhitespace), false},
		{"a Pod's forbidden change and a malformed image", invalid(podImageWhitespace, podUpdateForbidden), false},
		{"a StatefulSet's forbidden change and negative replicas", invalid(statefulSetReplicasNegative, statefulSetUpdateForbidden), false},
		{"a missing required value", invalid(requiredMissing), false},
		{"a field forbidden on create as on update", invalid(forbiddenOnCreate), false},
		{"a value that reads immutable", invalid(invalidValueNamedImmutable), false},
		{"a custom resource's value its CRD's rule refuses", invalid(crdValueRule), false},
		{"a Forbidden field named like an update", invalid(forbiddenStrategy), false},
		{"a Forbidden field named like a change's time", invalid(forbiddenLastUpdated), false},
		{"an admission policy's denial", invalid(policyDenied), false},
		{"a 422 without causes", apierrors.NewInvalid(schema.GroupKind{Group: "batch", Kind: "Job"}, "work", nil), false},
		{"not a refusal as invalid", apierrors.NewConflict(schema.GroupResource{Group: "batch", Resource: "jobs"}, "work", errors.New("field is immutable")), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := immutableChange(tt.err); got != tt.recreate {
				t.Errorf("immutableChange = %v, want %v", got, tt.recreate)
			}
		})
	}
}
