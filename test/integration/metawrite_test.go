package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/spec"
)

// answerKinds records the kind of every answer the API server sends.
type answerKinds struct {
	next  http.RoundTripper
	mu    sync.Mutex
	kinds []string
}

func (a *answerKinds) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(r)
	if err != nil || r.Method != http.MethodPatch {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var head struct {
		Kind string `json:"kind"`
	}
	_ = json.Unmarshal(body, &head)
	a.mu.Lock()
	a.kinds = append(a.kinds, head.Kind)
	a.mu.Unlock()
	return resp, nil
}

func (a *answerKinds) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := a.kinds
	a.kinds = nil
	return k
}

// TestMetadataOnlyWritesGetOnlyMetadataFromTheAPIServer checks that
// kube-apiserver answers the gateway's metadata-only writes (a custom
// resource's annotation, status and finalizer; a Deployment's apply) with
// PartialObjectMetadata, and that the metadata read is the object's.
func TestMetadataOnlyWritesGetOnlyMetadataFromTheAPIServer(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	rec := &answerKinds{}
	c := dynamic.ConfigFor(cfg)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec }
	rc, err := rest.UnversionedRESTClientFor(c)
	if err != nil {
		t.Fatal(err)
	}
	disco := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	a := apply.New(dynamic.New(rc), restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))).WithREST(rc)
	w := widget(ns, "meta", 1)
	w.SetFinalizers([]string{"opgate.dev/meta"})
	obj, err := dyn(t).Resource(widgets).Namespace(ns).Create(ctx, w, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { updateWidget(t, ns, "meta", func(w *unstructured.Unstructured) { w.SetFinalizers(nil) }) })

	value := "v1"
	m, err := a.SwapAnnotationMeta(ctx, obj, "opgate.dev/state.meta", nil, value)
	if err != nil {
		t.Fatal(err)
	}
	live, err := getWidget(t, ns, "meta")
	if err != nil {
		t.Fatal(err)
	}
	if m.ResourceVersion != live.GetResourceVersion() || m.Annotations["opgate.dev/state.meta"] != "v1" || m.UID != live.GetUID() {
		t.Errorf("metadata read: rv %s annotations %v uid %s; the object has rv %s uid %s", m.ResourceVersion, m.Annotations, m.UID, live.GetResourceVersion(), live.GetUID())
	}
	// As a pass does, the copy takes the write's metadata (the status
	// write is pinned to its resourceVersion).
	obj.SetResourceVersion(m.ResourceVersion)
	if _, err := a.PatchStatusMeta(ctx, obj, map[string]any{"message": "meta"}, true, nil); err != nil {
		t.Fatal(err)
	}
	if m, err = a.RemoveFinalizerMeta(ctx, obj, "opgate.dev/meta"); err != nil || len(m.Finalizers) != 0 {
		t.Fatalf("finalizers %v after release, err %v", m.Finalizers, err)
	}
	child := &unstructured.Unstructured{Object: deployment("meta", 1)}
	child.SetNamespace(ns)
	if m, err = a.ApplyChildMeta(ctx, child, nil, spec.UpdateApply, nil); err != nil || m.ResourceVersion == "" {
		t.Fatalf("apply: metadata %v, err %v", m, err)
	}
	kinds := rec.take()
	if len(kinds) != 4 {
		t.Errorf("%d answers to 4 writes: %v", len(kinds), kinds)
	}
	for i, kind := range kinds {
		if kind != "PartialObjectMetadata" {
			t.Errorf("answer %d is a %q, want PartialObjectMetadata", i, kind)
		}
	}
}
