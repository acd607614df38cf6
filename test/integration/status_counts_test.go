package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/engine"
)

// A WebhookOperator's status counts its objects, the callbacks failing on
// them and the deletions its finalizer holds, and follows them as they
// change: a failing callback that succeeds is no longer counted, a held
// deletion that completes no longer pending.
func TestOperatorStatusCountsFollowItsObjects(t *testing.T) {
	ns := newNamespace(t)
	var healed atomic.Bool
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		name := req.Object.GetName()
		if !healed.Load() && ((req.Callback == "create" && name == "bad") || (req.Callback == "cleanup" && name == "stuck")) {
			return 500, []byte("not now")
		}
		return 200, map[string]any{}
	})
	startGateway(t)
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: counts}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler: {url: %q}
  callbacks:
    - {id: create, events: [create]}
    - {id: cleanup, events: [delete]}
`, ns, h.URL))
	for _, name := range []string{"good", "bad", "stuck"} {
		createWidget(t, ns, name, 1)
	}
	eventually(t, 20*time.Second, func() error { return called(h, "create", 3) })
	deleteWidget(t, ns, "stuck")
	want := func(watched, failing, pending int64, lastError string) func() error {
		return func() error {
			o, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), "counts", metav1.GetOptions{})
			if err != nil {
				return err
			}
			st, _, _ := unstructured.NestedMap(o.Object, "status")
			got := fmt.Sprintf("%v/%v/%v", st["watchedObjects"], st["callbacksFailing"], st["finalizersPending"])
			if exp := fmt.Sprintf("%d/%d/%d", watched, failing, pending); got != exp {
				return fmt.Errorf("watched/failing/pending = %s, want %s (status %v)", got, exp, st)
			}
			if msg, _ := st["lastError"].(string); !strings.Contains(msg, lastError) || (lastError == "") != (msg == "") {
				return fmt.Errorf("lastError %q, want it to contain %q", msg, lastError)
			}
			return nil
		}
	}
	// A summary every 10 s: two of them, and the calls' retries, fit.
	eventually(t, 45*time.Second, want(3, 2, 1, "not now"))
	healed.Store(true)
	// The cleanup's next retry may be up to 8 s (and jitter) away.
	eventually(t, 40*time.Second, func() error {
		if _, err := getWidget(t, ns, "stuck"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("widget stuck still there (%v)", err)
		}
		return nil
	})
	eventually(t, 60*time.Second, want(2, 0, 0, ""))
}
