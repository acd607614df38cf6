package engine

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/metrics"
)

// TestUnreadableOwnerOfACachedChildIsRetried: an answer names a cached
// child controlled by a parent the operator's cache does not hold (it may
// have left the selection), and reading that parent fails. Whether the
// child is another parent's is unknown: the answer fails, temporary, and
// is retried, also while the answering parent is being deleted, which
// would otherwise leave the child out (as another's) and let the parent go
// without its answer applied.
func TestUnreadableOwnerOfACachedChildIsRetried(t *testing.T) {
	for _, deleting := range []bool{false, true} {
		name := "parent staying"
		if deleting {
			name = "parent deleting"
		}
		t.Run(name, func(t *testing.T) {
			a := testObject("Widget", "ns", "a", "uid-a", nil)
			away := testObject("Widget", "ns", "away", "uid-away", nil)
			x := peerController(t, "x", []*unstructured.Unstructured{a}, []*unstructured.Unstructured{testObject("ConfigMap", "ns", "c", "cm-1", away)})
			m, err := metrics.New(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), a, away)
			dyn.PrependReactor("get", "widgets", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, errors.New("connection refused")
			})
			x.Deps = Deps{Dynamic: dyn, Recorder: record.NewFakeRecorder(10), Metrics: m}
			x.log = slog.New(slog.DiscardHandler)
			parent := a.DeepCopy()
			if deleting {
				now := metav1.Now()
				parent.SetDeletionTimestamp(&now)
			}
			out, err := x.refuseForeignChildren(context.Background(), &pass{key: "ns/a", obj: parent}, []*unstructured.Unstructured{testObject("ConfigMap", "ns", "c", "", nil)})
			if err == nil {
				t.Fatalf("no error, %d children to apply: the owner's failed read taken as an answer", len(out))
			}
			if f := failure.As(err); f.Class != failure.Temporary || f.Reason != ReasonChildOwnerUnreadable {
				t.Errorf("error %v: %s %s, want a temporary %s", err, f.Class, f.Reason, ReasonChildOwnerUnreadable)
			}
		})
	}
}
