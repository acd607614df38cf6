package apply

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/failure"
)

// terminating is the NamespaceLifecycle admission plugin's refusal of a
// create in a namespace being deleted.
func terminating() error {
	err := apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "kid", errors.New("unable to create new content in namespace gone because it is being terminated"))
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Type: corev1.NamespaceTerminatingCause, Field: "metadata.namespace"})
	return err
}

func TestNamespaceTerminatingLooksThroughWrapping(t *testing.T) {
	if !NamespaceTerminating(classify("apply ConfigMap kid", terminating())) {
		t.Error("a classified refusal of a terminating namespace is not recognised")
	}
	if NamespaceTerminating(apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "kid", errors.New("rbac"))) {
		t.Error("an RBAC refusal is taken for a terminating namespace")
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		class  failure.Class
		reason string
	}{
		{"invalid content is permanent", apierrors.NewInvalid(schema.GroupKind{Kind: "Job"}, "work", nil), failure.Permanent, "ApplyRejected"},
		{"forbidden is retried", apierrors.NewForbidden(schema.GroupResource{Resource: "jobs"}, "work", errors.New("rbac")), failure.Temporary, "ApplyForbidden"},
		{"a missing namespace is retried and named", apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "later"), failure.Temporary, "NamespaceNotFound"},
		{"a namespace being deleted is named", terminating(), failure.Temporary, "NamespaceTerminating"},
		{"content outside the kind's schema is permanent", apierrors.NewInternalError(errors.New("failed to create typed patch object (ns/settings; /v1, Kind=ConfigMap): .dat: field not declared in schema")), failure.Permanent, "ApplyRejected"},
		{"another server error is retried", apierrors.NewInternalError(errors.New("etcdserver: request timed out")), failure.Temporary, "ApplyFailed"},
		{"another missing object is a plain failure", apierrors.NewNotFound(schema.GroupResource{Group: "batch", Resource: "jobs"}, "work"), failure.Temporary, "ApplyFailed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := failure.As(classify("apply Job work", tt.err))
			if f.Class != tt.class || f.Reason != tt.reason {
				t.Errorf("classify = %s %s, want %s %s", f.Class, f.Reason, tt.class, tt.reason)
			}
		})
	}
}
