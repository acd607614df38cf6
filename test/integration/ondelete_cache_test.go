package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// An OnDelete child that exists is not applied again, and the gateway
// works on it from the informer cache: it must never write to the cached
// object, which the informer reads at the same time (under -race a write
// shows as a data race; without it, as a crash of the whole gateway).
func TestOnDeleteChildLeavesTheInformerCacheUntouched(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		return 200, map[string]any{"children": []any{deployment(req.Object.GetName(), 1)}}
	})
	startGateway(t, operatorFor(t, "ondelete", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "apps/v1", Kind: "Deployment", UpdateStrategy: spec.UpdateOnDelete}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
		}
	}))
	createWidget(t, ns, "child", 1)
	deployments := kube(t).AppsV1().Deployments(ns)
	eventually(t, 30*time.Second, func() error {
		_, err := deployments.Get(context.Background(), "child", metav1.GetOptions{})
		return err
	})
	// Every change of the child is a sync of the parent, which answers
	// the (existing, so not applied) child again.
	syncsBefore := len(h.calls("sync"))
	for i := range 40 {
		body := fmt.Appendf(nil, `{"metadata":{"annotations":{"test.opgate.dev/poke":"%d"}}}`, i)
		if _, err := deployments.Patch(context.Background(), "child", types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // paces the pokes; nothing waits on it
	}
	eventually(t, 30*time.Second, func() error {
		if n := len(h.calls("sync")) - syncsBefore; n < 5 {
			return fmt.Errorf("%d syncs after the child changed, want at least 5", n)
		}
		return nil
	})
}
