package apply

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// fakeServer answers every write with a canned object, or with its
// metadata alone when asked for PartialObjectMetadata (as kube-apiserver
// does; test/integration runs these writes against a real one), or with
// a canned error. It records the last request.
type fakeServer struct {
	objects map[string][]byte // by resource: the answer
	partial map[string][]byte // by resource: its metadata alone
	mu      sync.Mutex
	fail    *metav1.Status
	last    recorded
}

type recorded struct {
	method, path, query, accept, contentType, body string
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.last = recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Accept"), r.Header.Get("Content-Type"), string(body)}
	fail := f.fail
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if fail != nil {
		st := *fail
		st.Kind, st.APIVersion = "Status", "v1"
		w.WriteHeader(int(fail.Code))
		_ = json.NewEncoder(w).Encode(&st)
		return
	}
	parts := strings.Split(r.URL.Path, "/")
	resource := parts[len(parts)-2]
	if parts[len(parts)-1] == "status" {
		resource = parts[len(parts)-3]
	}
	answer := f.objects[resource]
	if strings.HasPrefix(r.Header.Get("Accept"), "application/json;as=PartialObjectMetadata") {
		answer = f.partial[resource]
	}
	_, _ = w.Write(answer)
}

func (f *fakeServer) request() recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

var (
	widgetGVK     = schema.GroupVersionKind{Group: "test.opgate.dev", Version: "v1", Kind: "Widget"}
	deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
)

// newFake returns an Applier writing to a fakeServer, through the REST
// client when rc, through the dynamic client alone otherwise.
func newFake(t testing.TB, rc bool) (*Applier, *fakeServer) {
	t.Helper()
	f := &fakeServer{objects: map[string][]byte{}, partial: map[string][]byte{}}
	for resource, file := range map[string]string{"widgets": "testdata/widget.json", "deployments": "testdata/deployment.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var whole struct {
			Metadata json.RawMessage `json:"metadata"`
		}
		if err := json.Unmarshal(b, &whole); err != nil {
			t.Fatal(err)
		}
		f.objects[resource] = b
		f.partial[resource], _ = json.Marshal(map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": whole.Metadata})
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := dynamic.ConfigFor(&rest.Config{Host: srv.URL, QPS: -1})
	client, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(widgetGVK, meta.RESTScopeNamespace)
	mapper.Add(deploymentGVK, meta.RESTScopeNamespace)
	a := New(dynamic.New(client), mapper)
	if rc {
		a = a.WithREST(client)
	}
	return a, f
}

func canned(t testing.TB, file string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	return u
}

func childOf(t testing.TB) *unstructured.Unstructured {
	child := canned(t, "testdata/deployment.json")
	for _, f := range []string{"creationTimestamp", "generation", "resourceVersion", "uid"} {
		unstructured.RemoveNestedField(child.Object, "metadata", f)
	}
	delete(child.Object, "status")
	return child
}

// metaWrites are the writes with a metadata-only variant, each made both
// ways: the whole object's metadata and the metadata-only answer agree.
func metaWrites(t testing.TB) []struct {
	name  string
	whole func(context.Context, *Applier) (*unstructured.Unstructured, error)
	meta  func(context.Context, *Applier) (*metav1.ObjectMeta, error)
} {
	obj, child := canned(t, "testdata/widget.json"), childOf(t)
	status := map[string]any{"message": "size 1"}
	return []struct {
		name  string
		whole func(context.Context, *Applier) (*unstructured.Unstructured, error)
		meta  func(context.Context, *Applier) (*metav1.ObjectMeta, error)
	}{
		{"status",
			func(ctx context.Context, a *Applier) (*unstructured.Unstructured, error) {
				return a.PatchStatus(ctx, obj, status, true, nil)
			},
			func(ctx context.Context, a *Applier) (*metav1.ObjectMeta, error) {
				return a.PatchStatusMeta(ctx, obj, status, true, nil)
			}},
		{"child",
			func(ctx context.Context, a *Applier) (*unstructured.Unstructured, error) {
				return a.ApplyChild(ctx, child, spec.UpdateApply, nil)
			},
			func(ctx context.Context, a *Applier) (*metav1.ObjectMeta, error) {
				return a.ApplyChildMeta(ctx, child, nil, spec.UpdateApply, nil)
			}},
		{"child, its JSON made by the caller",
			func(ctx context.Context, a *Applier) (*unstructured.Unstructured, error) {
				return a.ApplyChild(ctx, child, spec.UpdateApply, nil)
			},
			func(ctx context.Context, a *Applier) (*metav1.ObjectMeta, error) {
				body, err := json.Marshal(child.Object)
				if err != nil {
					return nil, err
				}
				return a.ApplyChildMeta(ctx, child, body, spec.UpdateApply, nil)
			}},
		{"finalizer release",
			func(ctx context.Context, a *Applier) (*unstructured.Unstructured, error) {
				// The release's patch through the dynamic client (AddFinalizer
				// and RemoveFinalizer pin theirs; release_test.go).
				res, err := a.Resource(obj)
				if err != nil {
					return nil, err
				}
				next, _ := removing("opgate.dev/perf")(obj.GetFinalizers())
				body, err := finalizerPatch(obj, next, false)
				if err != nil {
					return nil, err
				}
				out, err := res.Patch(ctx, obj.GetName(), types.JSONPatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
				if apierrors.IsNotFound(err) {
					return nil, nil // gone: nothing to hold, as RemoveFinalizer takes it
				}
				if err != nil {
					return nil, classify("update finalizers of "+describe(obj), err)
				}
				return out, nil
			},
			func(ctx context.Context, a *Applier) (*metav1.ObjectMeta, error) {
				return a.RemoveFinalizerMeta(ctx, obj, "opgate.dev/perf")
			}},
	}
}

func TestMetadataOnlyWritesSendTheSameRequestAndReadTheSameMetadata(t *testing.T) {
	ctx := context.Background()
	for _, tt := range metaWrites(t) {
		t.Run(tt.name, func(t *testing.T) {
			for _, rc := range []bool{true, false} {
				a, f := newFake(t, rc)
				whole, err := tt.whole(ctx, a)
				if err != nil {
					t.Fatal(err)
				}
				wholeReq := f.request()
				m, err := tt.meta(ctx, a)
				if err != nil {
					t.Fatal(err)
				}
				metaReq := f.request()
				if rc && !strings.Contains(metaReq.accept, "as=PartialObjectMetadata") {
					t.Errorf("metadata-only write asked for %q, want PartialObjectMetadata", metaReq.accept)
				}
				metaReq.accept, wholeReq.accept = "", ""
				if metaReq != wholeReq {
					t.Errorf("metadata-only write sent\n%+v\nthe dynamic client sends\n%+v", metaReq, wholeReq)
				}
				got, _ := json.Marshal(m)
				want, _ := json.Marshal(ObjectMetaOf(whole))
				if string(got) != string(want) || m.ResourceVersion == "" {
					t.Errorf("metadata = %s\nwant %s", got, want)
				}
				if len(m.ManagedFields) != 0 {
					t.Errorf("managedFields kept: %v", m.ManagedFields)
				}
			}
		})
	}
}

func TestMetadataOnlyWritesClassifyErrorsAsBefore(t *testing.T) {
	ctx := context.Background()
	statuses := []*metav1.Status{
		&apierrors.NewConflict(schema.GroupResource{Resource: "widgets"}, "m000042", nil).ErrStatus,
		&apierrors.NewInvalid(widgetGVK.GroupKind(), "m000042", nil).ErrStatus,
		&apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "later").ErrStatus,
		&apierrors.NewForbidden(schema.GroupResource{Resource: "widgets"}, "m000042", errors.New("rbac")).ErrStatus,
		&apierrors.NewInternalError(errors.New("etcd")).ErrStatus,
	}
	for _, tt := range metaWrites(t) {
		for _, st := range statuses {
			t.Run(tt.name+"/"+string(st.Reason), func(t *testing.T) {
				a, f := newFake(t, true)
				f.fail = st
				_, werr := tt.whole(ctx, a)
				_, merr := tt.meta(ctx, a)
				if (werr == nil) != (merr == nil) {
					t.Fatalf("errors: whole %v, metadata-only %v; want both or neither", werr, merr)
				}
				if werr == nil {
					return // a finalizer of a missing object: nothing to hold
				}
				if werr.Error() != merr.Error() {
					t.Errorf("error %q, the dynamic client's %q", merr, werr)
				}
				wf, mf := failure.As(werr), failure.As(merr)
				if wf.Class != mf.Class || wf.Reason != mf.Reason {
					t.Errorf("classified %s %s, the dynamic client's %s %s", mf.Class, mf.Reason, wf.Class, wf.Reason)
				}
				if apierrors.ReasonForError(merr) != st.Reason {
					t.Errorf("reason %q, want %q", apierrors.ReasonForError(merr), st.Reason)
				}
			})
		}
	}
}

func TestDecodeMetaReadsMetadataAndTakesAFailedStatusAsItsError(t *testing.T) {
	st := apierrors.NewConflict(schema.GroupResource{Resource: "widgets"}, "w", nil).ErrStatus
	st.Kind, st.APIVersion = "Status", "v1" // as the API server sends it
	body, _ := json.Marshal(st)
	if _, err := decodeMeta(body); !apierrors.IsConflict(err) {
		t.Errorf("err = %v, want a conflict", err)
	}
	whole, _ := os.ReadFile("testdata/widget.json")
	if m, err := decodeMeta(whole); err != nil || m.ResourceVersion != "48211" || len(m.Finalizers) != 1 {
		t.Errorf("a whole object's metadata (a server that does not transform): %v, err %v", m, err)
	}
	if _, err := decodeMeta(nil); err == nil {
		t.Error("an empty answer decoded without error")
	}
}

func TestWithMetaReplacesMetadataAndKeepsTheRest(t *testing.T) {
	obj := canned(t, "testdata/widget.json")
	before, _ := json.Marshal(obj.Object)
	m := ObjectMetaOf(obj)
	m.ResourceVersion, m.Finalizers, m.Annotations = "99", nil, map[string]string{"a": "b"}
	out := WithMeta(obj, m)
	if after, _ := json.Marshal(obj.Object); string(after) != string(before) {
		t.Errorf("WithMeta changed its input")
	}
	if out.GetResourceVersion() != "99" || out.GetFinalizers() != nil || out.GetAnnotations()["a"] != "b" || out.GetName() != obj.GetName() {
		t.Errorf("metadata = %v", out.Object["metadata"])
	}
	if got, _, _ := unstructured.NestedString(out.Object, "status", "message"); got != "size 1" {
		t.Errorf("status lost: %v", out.Object["status"])
	}
	if out.GetCreationTimestamp() != obj.GetCreationTimestamp() || out.GetGeneration() != obj.GetGeneration() {
		t.Errorf("creationTimestamp/generation %v/%d, want %v/%d", out.GetCreationTimestamp(), out.GetGeneration(), obj.GetCreationTimestamp(), obj.GetGeneration())
	}
}

// BenchmarkWriteAnswer makes each write whose answer the engine may read in
// part, reading the whole answer (the dynamic client) or its metadata.
func BenchmarkWriteAnswer(b *testing.B) {
	ctx := context.Background()
	a, _ := newFake(b, true)
	for _, tt := range metaWrites(b) {
		b.Run(tt.name+"/whole", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tt.whole(ctx, a); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/metadata", func(b *testing.B) {
			obj := canned(b, "testdata/widget.json")
			b.ReportAllocs()
			for b.Loop() {
				m, err := tt.meta(ctx, a)
				if err != nil {
					b.Fatal(err)
				}
				_ = WithMeta(obj, m) // as the pass adopts it
			}
		})
	}
}

// countingMapper counts the questions asked of it.
type countingMapper struct {
	meta.RESTMapper
	asked int
}

func (c *countingMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	c.asked++
	return c.RESTMapper.RESTMapping(gk, versions...)
}

func TestPinnedKindsAreNotAskedOfTheMapperUntilUnpinned(t *testing.T) {
	a, _ := newFake(t, true)
	counting := &countingMapper{RESTMapper: a.mapper}
	a.mapper = counting
	m, err := counting.RESTMapping(widgetGVK.GroupKind(), widgetGVK.Version)
	if err != nil {
		t.Fatal(err)
	}
	a = a.Pinned(m)
	obj, child := canned(t, "testdata/widget.json"), childOf(t)
	value := "x"
	write := func() {
		t.Helper()
		if _, err := a.SwapAnnotationMeta(context.Background(), obj, "k", nil, value); err != nil {
			t.Fatal(err)
		}
		if _, err := a.ApplyChildMeta(context.Background(), child, nil, spec.UpdateApply, nil); err != nil {
			t.Fatal(err)
		}
	}
	counting.asked = 0
	write()
	if counting.asked != 1 {
		t.Errorf("mapper asked %d times for a pinned and an unpinned kind, want 1", counting.asked)
	}
	a.Unpin()
	counting.asked = 0
	write()
	if counting.asked != 2 {
		t.Errorf("mapper asked %d times after Unpin, want 2", counting.asked)
	}
}
