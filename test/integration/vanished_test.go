package integration

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// deleteHold is a validating admission webhook on Widget deletes in one
// namespace. The API server calls it after its delete has read the object:
// holding the first delete of target there until release closes lets a
// finalizer be added between that read and the write of the delete.
type deleteHold struct {
	held    chan struct{} // closed once the delete of target waits
	seen    chan string   // names of the Widgets whose delete it saw
	release <-chan struct{}
	target  string
	once    sync.Once
}

func holdDeletes(t *testing.T, ns, target string, release <-chan struct{}) *deleteHold {
	t.Helper()
	d := &deleteHold{held: make(chan struct{}), seen: make(chan string, 100), release: release, target: target}
	srv := httptest.NewTLSServer(http.HandlerFunc(d.serve))
	t.Cleanup(srv.Close)
	url := srv.URL + "/hold"
	none, fail, timeout := admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Fail, int32(30)
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "hold.test.opgate.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url,
				CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Delete},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{widgets.Group}, APIVersions: []string{widgets.Version},
					Resources: []string{widgets.Resource}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	hooks := kube(t).AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := hooks.Create(context.Background(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create webhook: %v", err)
	}
	t.Cleanup(func() { _ = hooks.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	// The API server picks the webhook up a moment later: dry-run deletes
	// of a probe show when.
	createWidget(t, ns, "probe", 1)
	eventually(t, 30*time.Second, func() error {
		_ = dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "probe", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		for {
			select {
			case name := <-d.seen:
				if name == "probe" {
					return nil
				}
			default:
				return errors.New("the delete webhook is not called yet")
			}
		}
	})
	return d
}

func (d *deleteHold) serve(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	name := review.Request.Name
	select {
	case d.seen <- name:
	default:
	}
	if name == d.target {
		first := false
		d.once.Do(func() { first = true })
		if first {
			close(d.held)
			select {
			case <-d.release:
			case <-time.After(25 * time.Second): // within the webhook's timeout
			}
		}
	}
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	_ = json.NewEncoder(w).Encode(review)
}

// TestObjectDeletedWhileItsFinalizerIsAddedGetsItsDeleteCallback: the API
// server deletes an object at once when its delete read the object without
// finalizers, even if a finalizer was added before the delete was written
// (its store retries the write without looking at finalizers again). The
// object then vanishes holding the operator's finalizer, the create call
// made meanwhile finds it gone, and its delete callback is still owed. A
// webhook holds the delete in that window, with the gateway starting (the
// object existed before it) and running (the object joins its selection).
func TestObjectDeletedWhileItsFinalizerIsAddedGetsItsDeleteCallback(t *testing.T) {
	for _, running := range []bool{false, true} {
		name := map[bool]string{false: "gateway starting", true: "gateway running"}[running]
		t.Run(name, func(t *testing.T) { testVanishedHoldingFinalizer(t, running) })
	}
}

func testVanishedHoldingFinalizer(t *testing.T, running bool) {
	ns := newNamespace(t)
	ctx := context.Background()
	client := dyn(t).Resource(widgets).Namespace(ns)
	created := make(chan struct{})
	var once sync.Once
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event == callbacks.EventCreate && req.Object.GetName() == "w" {
			once.Do(func() { close(created) })
			// Answer once the object is gone, as in the burst: the status
			// of the answer then has nothing to go to.
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := client.Get(ctx, "w", metav1.GetOptions{}); apierrors.IsNotFound(err) {
					break
				}
				time.Sleep(20 * time.Millisecond) // the handler polls; the test's assertions do not sleep
			}
		}
		return 200, map[string]any{"status": map[string]any{"message": "made"}}
	})
	hold := holdDeletes(t, ns, "w", created)
	op := operatorFor(t, "vanish", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = nil
		s.Callbacks = []spec.Callback{
			{ID: "make", Events: []spec.Event{spec.EventCreate}},
			{ID: "clean", Events: []spec.Event{spec.EventDelete}},
		}
		s.Retry = fastRetry(100 * time.Millisecond)
		if running {
			s.Watch.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"join": "yes"}}
		}
	})
	if running {
		startGateway(t, op)
		ready := widget(ns, "ready", 1)
		ready.SetLabels(map[string]string{"join": "yes"})
		if _, err := client.Create(ctx, ready, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() error {
			if len(h.calls("make")) == 0 {
				return errors.New("the running operator did not call create yet")
			}
			return nil
		})
	}
	w := createWidget(t, ns, "w", 1)
	deleted := make(chan error, 1)
	go func() {
		deleted <- client.Delete(ctx, "w", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr(w.GetUID())}})
	}()
	select {
	case <-hold.held:
	case err := <-deleted:
		t.Fatalf("the delete was not held: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the delete never reached the webhook")
	}
	if running {
		if _, err := client.Patch(ctx, "w", types.MergePatchType, []byte(`{"metadata":{"labels":{"join":"yes"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	} else {
		startGateway(t, op)
	}
	if err := <-deleted; err != nil {
		t.Fatalf("delete: %v", err)
	}
	select {
	case <-created:
	default:
		t.Fatal("the delete went through before the gateway called create: the window was missed")
	}
	eventually(t, 30*time.Second, func() error {
		for _, req := range h.calls("clean") {
			if req.Object.GetUID() == w.GetUID() {
				return nil
			}
		}
		return errors.New("the object vanished holding the operator's finalizer after create was called, and its delete callback never came")
	})
}
