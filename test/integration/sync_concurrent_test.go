package integration

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// blockingSync answers a sync with answer(size), holding the first call
// that sees spec.size 2 until release is closed (entered says it came).
type blockingSync struct {
	entered chan struct{}
	release chan struct{}
	armed   atomic.Bool
}

func newBlockingSync() *blockingSync {
	b := &blockingSync{entered: make(chan struct{}, 1), release: make(chan struct{})}
	b.armed.Store(true)
	return b
}

func (b *blockingSync) answer(answer func(size int64) any) func(callbacks.Request) (int, any) {
	return func(req callbacks.Request) (int, any) {
		size, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size")
		if size == 2 && b.armed.CompareAndSwap(true, false) {
			b.entered <- struct{}{}
			<-b.release
		}
		return 200, answer(size)
	}
}

// Someone changes a child while a sync call runs, and the pass then
// applies that child: the apply's answer carries the change, which no
// handler saw. A sync must follow that shows it, not wait for the resync
// period.
func TestAChildChangedDuringASyncCallIsSyncedAgain(t *testing.T) {
	ns := newNamespace(t)
	b := newBlockingSync()
	h := newHandler(t, b.answer(func(size int64) any {
		kid := configMap(ns, "kid")
		kid["data"] = map[string]any{"size": fmt.Sprint(size)}
		return map[string]any{"children": []any{kid}}
	}))
	startGateway(t, operatorFor(t, "childrace", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
		s.ResyncPeriod = &spec.Duration{Duration: time.Hour}
	}))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { _, err := getConfigMap(t, ns, "kid"); return err })
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	<-b.entered
	if _, err := kube(t).CoreV1().ConfigMaps(ns).Patch(context.Background(), "kid", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"touched":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	close(b.release)
	eventually(t, 20*time.Second, func() error {
		for _, req := range h.calls("sync") {
			if c := req.Children[callbacks.KindKey("v1", "ConfigMap")]["kid"]; c != nil && c.GetAnnotations()["touched"] == "yes" {
				return nil
			}
		}
		return fmt.Errorf("no sync has shown the handler the child's change (%d syncs)", len(h.calls("sync")))
	})
}

// The same for the parent: its spec changes while a sync-only operator's
// sync call runs; the status write after it answers the object with the
// new spec, which no handler saw. A sync must follow that sees it.
func TestAParentChangedDuringASyncCallIsSyncedAgain(t *testing.T) {
	ns := newNamespace(t)
	b := newBlockingSync()
	h := newHandler(t, b.answer(func(size int64) any {
		return map[string]any{"status": map[string]any{"message": fmt.Sprintf("size %d", size)}}
	}))
	startGateway(t, operatorFor(t, "parentrace", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
		s.ResyncPeriod = &spec.Duration{Duration: time.Hour}
	}))
	createWidget(t, ns, "example", 1)
	statusIs := func(want string) func() error {
		return func() error {
			w, err := getWidget(t, ns, "example")
			if err != nil {
				return err
			}
			if m, _, _ := unstructured.NestedString(w.Object, "status", "message"); m != want {
				return fmt.Errorf("status %q, want %q (%d syncs)", m, want, len(h.calls("sync")))
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, statusIs("size 1"))
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	<-b.entered
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(3), "spec", "size")
	})
	close(b.release)
	eventually(t, 20*time.Second, statusIs("size 3"))
}
