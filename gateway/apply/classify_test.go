package apply

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/failure"
)

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
