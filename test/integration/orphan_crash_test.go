package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// A parent deleted with propagationPolicy Orphan; the gateway that sees it
// deleting calls its delete callback and dies (SIGKILL, node lost: here its
// API connection goes dead) before the pass's end. The garbage collector
// removes the orphan finalizer meanwhile. The next gateway (restarted, or
// the standby) sees no finalizer: only the state, written before the delete
// callback, tells it to keep the label-owned child.
func TestOrphanDeletionKeepsChildrenWhenTheGatewayIsKilledDuringTheDeleteCall(t *testing.T) {
	ns := newNamespace(t)
	role := ns + "-role"
	t.Cleanup(func() {
		_ = kube(t).RbacV1().ClusterRoles().Delete(context.Background(), role, metav1.DeleteOptions{})
		removeFinalizers(t, ns, "example")
	})
	firstDelete := make(chan struct{})
	release := make(chan struct{})
	var deletes atomic.Int32
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Event {
		case callbacks.EventCreate:
			return 200, map[string]any{"children": []any{clusterRole(role)}}
		case callbacks.EventDelete:
			if deletes.Add(1) == 1 {
				close(firstDelete)
				<-release
			}
		}
		return 200, nil
	})
	op := operatorFor(t, "orphcrash", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}}
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	})
	var dead atomic.Bool
	ac := rest.CopyConfig(cfg)
	ac.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if dead.Load() {
				return nil, errors.New("process killed")
			}
			return next.RoundTrip(r)
		})
	})
	startGatewayWithConfig(t, ac, runner.Options{}, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error {
		_, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), role, metav1.GetOptions{})
		return err
	})
	policy := metav1.DeletePropagationOrphan
	if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-firstDelete:
	case <-time.After(20 * time.Second):
		t.Fatal("delete callback not called")
	}
	// The gateway dies mid-call: nothing more of it reaches the API server.
	dead.Store(true)
	// The garbage collector, done orphaning.
	dropFinalizer(t, ns, "example", metav1.FinalizerOrphanDependents)
	once.Do(func() { close(release) })

	startGateway(t, op) // the restarted gateway (or the standby taking over)
	eventually(t, 20*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err == nil && hasFinalizer(w, "opgate.dev/orphcrash") {
			return fmt.Errorf("finalizer still held; finalizers %v", w.GetFinalizers())
		}
		return nil
	})
	cr, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), role, metav1.GetOptions{})
	if err != nil || cr.DeletionTimestamp != nil {
		t.Fatalf("parent deleted with propagationPolicy Orphan, yet the restarted gateway deleted its label-owned ClusterRole %s (err %v)", role, err)
	}
}
