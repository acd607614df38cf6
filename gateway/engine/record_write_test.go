package engine

import (
	"context"
	"errors"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/opgate/opgate/gateway/spec"
)

// A gateway that dies between two writes of the operator record must not
// leave an operator listed without its kind: the next start, with the
// operator dropped from the files, would release it over no kind at all,
// end its entry and leave its objects' finalizers for ever. So the record
// of a starting operator lists it only together with its kind, whichever
// of its writes is the last to land.
func TestTheRecordNeverListsAnOperatorWithoutItsKind(t *testing.T) {
	op := &spec.WebhookOperator{}
	op.Name = "drop"
	op.Spec.Watch = spec.WatchSpec{APIVersion: "test.opgate.dev/v1", Kind: "Widget", Namespaces: []string{"a"}}
	for writes := 1; writes <= 3; writes++ {
		kube := fake.NewClientset()
		landed := 0
		kube.PrependReactor("*", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetVerb() != "create" && a.GetVerb() != "patch" && a.GetVerb() != "update" {
				return false, nil, nil
			}
			if landed == writes {
				return true, nil, errors.New("the gateway died")
			}
			landed++
			return false, nil, nil
		})
		record := ConfigMapRecord{Kube: kube, Ref: types.NamespacedName{Namespace: "ops", Name: "opgate-gateway"}}
		m := &Manager{record: record}
		_ = m.recordKind(context.Background(), op)

		listed, err := record.Operators(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		kinds, err := record.Kinds(context.Background(), op.Name)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(listed, op.Name) && !slices.Contains(kinds, watchedKind(op.Spec.Watch)) {
			t.Errorf("after %d write(s) landed the record lists %v with kinds %v: a start without it would release no kind", landed, listed, kinds)
		}
	}
}
