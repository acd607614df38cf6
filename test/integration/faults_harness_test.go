package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/test/invariant"
)

var configMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// faultCallbacks are the callbacks of every fault scenario: one per event
// the invariant checker owes a delivery for.
func faultCallbacks() []spec.Callback {
	return []spec.Callback{
		{ID: "make", Events: []spec.Event{spec.EventCreate}},
		{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
		{ID: "clean", Events: []spec.Event{spec.EventDelete}},
	}
}

// faultOperator is the operator of the fault scenarios: Widgets of one
// namespace, ConfigMap children, the three callbacks, fast retries capped
// at maxDelay so that recovery time is measured against a known cap.
func faultOperator(t *testing.T, name, ns, url string, maxDelay time.Duration, mutate func(*spec.OperatorSpec)) *spec.WebhookOperator {
	t.Helper()
	return operatorFor(t, name, ns, url, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Callbacks = faultCallbacks()
		s.Retry = fastRetry(100 * time.Millisecond)
		s.Retry.MaxDelay = &spec.Duration{Duration: maxDelay}
		if mutate != nil {
			mutate(s)
		}
	})
}

// answerWidget is the good answer of every fault scenario: the image in
// the status, and one ConfigMap child holding it (none for a delete).
func answerWidget(req callbacks.Request) map[string]any {
	if req.Event == callbacks.EventDelete {
		return map[string]any{}
	}
	image, _, _ := unstructured.NestedString(req.Object.Object, "spec", "image")
	return map[string]any{
		"status": map[string]any{"message": "image " + image},
		"children": []any{map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": req.Object.GetName() + "-cm"},
			"data":     map[string]any{"image": image},
		}},
	}
}

// writeAnswer writes the good answer.
func writeAnswer(w http.ResponseWriter, req callbacks.Request) {
	w.Header().Set("Content-Type", "application/json")
	writeAnswerBody(w, req)
}

// writeAnswerBody writes the good answer's body, leaving the headers alone.
func writeAnswerBody(w http.ResponseWriter, req callbacks.Request) {
	_ = json.NewEncoder(w).Encode(answerWidget(req))
}

// decodeRequest reads a callback request without consuming it for the
// next handler.
func decodeRequest(r *http.Request) (callbacks.Request, error) {
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req callbacks.Request
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	return req, err
}

// faultRun is one scenario's objects, the changes made to them and the
// checker that judges the end.
type faultRun struct {
	t          *testing.T
	ns         string
	chk        *invariant.Checker
	client     dynamic.ResourceInterface // the parents in ns
	apiVersion string                    // of the parents
	kind       string
}

// newFaultRun starts a scenario in ns; its handler is served behind the
// checker's recorder before the operator, which needs the handler's URL,
// exists: expect sets the operator once it does.
func newFaultRun(t *testing.T, ns string) *faultRun {
	return newFaultRunOf(t, ns, widgets, "Widget")
}

// newFaultRunOf is newFaultRun for parents of another kind, whose spec
// takes an image string.
func newFaultRunOf(t *testing.T, ns string, gvr schema.GroupVersionResource, kind string) *faultRun {
	chk := &invariant.Checker{
		Scope: invariant.Scope{
			Parent: gvr, Namespace: ns, Children: []schema.GroupVersionResource{configMapsGVR},
			NoGarbageCollector: true,
		},
		Client: dyn(t), History: invariant.NewHistory(), Recorder: invariant.NewRecorder(), MaxDuplicates: -1,
	}
	return &faultRun{t: t, ns: ns, chk: chk, client: dyn(t).Resource(gvr).Namespace(ns),
		apiVersion: gvr.GroupVersion().String(), kind: kind}
}

// expect makes op's callbacks the ones the checker owes deliveries to.
func (f *faultRun) expect(op *spec.WebhookOperator) *spec.WebhookOperator {
	f.chk.Expect = invariant.ExpectFrom(op)
	return op
}

func (f *faultRun) object(name, image string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": f.apiVersion, "kind": f.kind,
		"metadata": map[string]any{"name": name, "namespace": f.ns},
		"spec":     map[string]any{"image": image},
	}}
	if f.kind == "Widget" {
		obj.Object["spec"].(map[string]any)["size"] = int64(1)
	}
	return obj
}

// create creates a Widget with an image and records it.
func (f *faultRun) create(ctx context.Context, name, image string) error {
	out, err := f.client.Create(ctx, f.object(name, image), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	return f.chk.History.Record(invariant.Created, out)
}

// setImage changes a Widget's image with a merge patch, which the
// gateway's own writes cannot conflict with, and records the change.
func (f *faultRun) setImage(ctx context.Context, name, image string) error {
	patch := fmt.Appendf(nil, `{"spec":{"image":%q}}`, image)
	out, err := f.client.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("update %s: %w", name, err)
	}
	return f.chk.History.Record(invariant.Updated, out)
}

// remove deletes a Widget and records it.
func (f *faultRun) remove(ctx context.Context, name string) error {
	w, err := f.client.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if err := f.client.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr(w.GetUID())}}); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return f.chk.History.Record(invariant.Deleted, w)
}

func ptr[T any](v T) *T { return &v }

// lifecycle creates, updates and deletes one Widget, failing the test on
// the first error.
func (f *faultRun) lifecycle(name string, deleteIt bool) {
	f.t.Helper()
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { return f.create(ctx, name, "v1") },
		func() error { return f.setImage(ctx, name, "v2") },
		func() error {
			if deleteIt {
				return f.remove(ctx, name)
			}
			return nil
		},
	} {
		if err := step(); err != nil {
			f.t.Fatal(err)
		}
	}
}

// logBuffer is a slog destination a test can search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newRecordedServer serves h behind the checker's recorder.
func newRecordedServer(t *testing.T, f *faultRun, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(f.chk.Recorder.Wrap(h))
	t.Cleanup(srv.Close)
	return srv
}

// since formats a measured duration for the logs the docs quote.
func since(start time.Time) string { return time.Since(start).Round(100 * time.Millisecond).String() }
