package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/spec"
)

// TestParentWritesForARecreatedObjectDoNotLandOnIt: a pass writes status
// and state by name, from the copy it read. If the object was deleted and
// one of the same name created meanwhile (kubectl delete && kubectl apply
// while a slow handler runs), each write must fail as "not found", so that
// the pass ends and the next one reads the new object. The state must not
// land on the new object: it carries the old uid, so the new object's
// first pass would take it as another object's (an Event saying so) where
// it should simply find none. Nor must the status: through the status
// subresource (the server copies the metadata from the stored object, uid
// included) the write is pinned to the resourceVersion read. (Through the
// object itself, the widget's subresource drops the status anyway.)
func TestParentWritesForARecreatedObjectDoNotLandOnIt(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	whole, meta := appliers(t)
	value := `{"handled":"the old object's"}`
	status := map[string]any{"message": "the old object's"}
	writes := []struct {
		name  string
		write func(a *apply.Applier, old *unstructured.Unstructured) error
	}{
		{"state annotation", func(a *apply.Applier, old *unstructured.Unstructured) error {
			_, err := a.SwapAnnotationMeta(ctx, old, "opgate.dev/state.recreated", nil, value)
			return err
		}},
		{"status", func(a *apply.Applier, old *unstructured.Unstructured) error {
			_, err := a.PatchStatus(ctx, old, status, true, nil)
			return err
		}},
		{"status, metadata answer", func(a *apply.Applier, old *unstructured.Unstructured) error {
			_, err := a.PatchStatusMeta(ctx, old, status, true, nil)
			return err
		}},
		// The widget has a status subresource; written through the object,
		// as for a kind without one, the status names the uid.
		{"status through the object", func(a *apply.Applier, old *unstructured.Unstructured) error {
			_, err := a.PatchStatus(ctx, old, status, false, nil)
			return err
		}},
		{"status through the object, metadata answer", func(a *apply.Applier, old *unstructured.Unstructured) error {
			_, err := a.PatchStatusMeta(ctx, old, status, false, nil)
			return err
		}},
	}
	appliers := []struct {
		name string
		a    *apply.Applier
	}{
		{"dynamic client", whole},
		{"REST client", meta},
	}
	for _, w := range writes {
		for _, ap := range appliers {
			t.Run(w.name+"/"+ap.name, func(t *testing.T) {
				name := fmt.Sprintf("again-%d", time.Now().UnixNano()%100000)
				old := createWidget(t, ns, name, 1)
				deleteWidget(t, ns, name)
				waitWidgetGone(t, ns, name)
				fresh := createWidget(t, ns, name, 1)
				err := w.write(ap.a, old)
				if !apierrors.IsNotFound(err) || !errors.Is(err, apply.ErrReplaced) {
					t.Errorf("write for the deleted object: err %v, want not found and apply.ErrReplaced", err)
				}
				live, err := getWidget(t, ns, name)
				if err != nil {
					t.Fatal(err)
				}
				if live.GetUID() != fresh.GetUID() {
					t.Fatalf("the new object was replaced: uid %s, want %s", live.GetUID(), fresh.GetUID())
				}
				if _, has := live.GetAnnotations()["opgate.dev/state.recreated"]; has {
					t.Errorf("the deleted object's state landed on the new one: %v", live.GetAnnotations())
				}
				if msg, _, _ := unstructured.NestedString(live.Object, "status", "message"); msg != "" {
					t.Errorf("the deleted object's status landed on the new one: %v", live.Object["status"])
				}

			})
		}
	}
}

// TestFinalizerWritesForARecreatedObjectLeaveItAlone: a finalizer write
// made from the copy of a deleted object must neither add the gateway's
// finalizer to a new object of the same name (whose create has not run) nor
// take one away from it (its delete callback would be skipped): both find
// the object gone.
func TestFinalizerWritesForARecreatedObjectLeaveItAlone(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	_, a := appliers(t)
	const fin = "opgate.dev/again"
	for _, tt := range []struct {
		name  string
		held  []string // the finalizers of both objects
		write func(old *unstructured.Unstructured) (bool, error)
		want  []string // the new object's finalizers afterwards
	}{
		{"add", nil, func(old *unstructured.Unstructured) (bool, error) {
			out, err := a.AddFinalizer(ctx, old, fin)
			return out != nil, err
		}, nil},
		{"remove", []string{fin}, func(old *unstructured.Unstructured) (bool, error) {
			out, err := a.RemoveFinalizer(ctx, old, fin)
			return out != nil, err
		}, []string{fin}},
		{"remove, metadata answer", []string{fin}, func(old *unstructured.Unstructured) (bool, error) {
			out, err := a.RemoveFinalizerMeta(ctx, old, fin)
			return out != nil, err
		}, []string{fin}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("fin-%d", time.Now().UnixNano()%100000)
			w := widget(ns, name, 1)
			w.SetFinalizers(tt.held)
			old, err := dyn(t).Resource(widgets).Namespace(ns).Create(ctx, w, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			updateWidget(t, ns, name, func(w *unstructured.Unstructured) { w.SetFinalizers(nil) })
			deleteWidget(t, ns, name)
			waitWidgetGone(t, ns, name)
			w = widget(ns, name, 1)
			w.SetFinalizers(tt.held)
			fresh, err := dyn(t).Resource(widgets).Namespace(ns).Create(ctx, w, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { updateWidget(t, ns, name, func(w *unstructured.Unstructured) { w.SetFinalizers(nil) }) })
			answered, err := tt.write(old)
			if err != nil || answered {
				t.Errorf("finalizer write for the deleted object: answered %v, err %v; want nothing and no error (gone)", answered, err)
			}
			live, err := getWidget(t, ns, name)
			if err != nil {
				t.Fatal(err)
			}
			if live.GetUID() != fresh.GetUID() || !slices.Equal(live.GetFinalizers(), tt.want) {
				t.Errorf("the new object's finalizers %v, want %v", live.GetFinalizers(), tt.want)
			}
		})
	}
}

// TestPassOverADeletedObjectLeavesItsNamesakeToItsOwnCreate: while the
// create handler of an object runs, the object is deleted and another of
// the same name created. The pass over the old one must end without
// writing its answer's status or its state onto the new one (which would
// then start with another object's state: a StateOfAnotherObject Event),
// and without calling the old one's handler again; the new one gets its
// own create, and its state names it.
func TestPassOverADeletedObjectLeavesItsNamesakeToItsOwnCreate(t *testing.T) {
	ns := newNamespace(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		blocked := false
		first.Do(func() { blocked = true })
		if !blocked {
			return 200, map[string]any{} // the new object's create: no status
		}
		close(arrived)
		<-release
		return 200, map[string]any{"status": map[string]any{"message": "the deleted object's"}}
	})
	startGateway(t, operatorFor(t, "again", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = nil
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	old := createWidget(t, ns, "again", 1)
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("create not called")
	}
	deleteWidget(t, ns, "again")
	waitWidgetGone(t, ns, "again")
	fresh := createWidget(t, ns, "again", 1)
	close(release)

	eventually(t, 20*time.Second, func() error { return calledFor(h, "create", fresh.GetUID(), 1) })
	eventually(t, 20*time.Second, func() error {
		if st := stateOf(t, ns, "again", "again"); st.U != string(fresh.GetUID()) || st.H == "" {
			return fmt.Errorf("state %+v, want the new object's (uid %s) create handled", st, fresh.GetUID())
		}
		return nil
	})
	if live, err := getWidget(t, ns, "again"); err != nil {
		t.Fatal(err)
	} else if msg, _, _ := unstructured.NestedString(live.Object, "status", "message"); msg != "" {
		t.Errorf("the deleted object's status landed on the new one: %v", live.Object["status"])
	}
	if err := hasEvent(t, ns, "again", "Normal", "StateOfAnotherObject"); err == nil {
		t.Errorf("the new object started from the deleted one's state (Event StateOfAnotherObject)")
	}
	if n := len(h.calls("create")); n != 2 {
		t.Errorf("create called %d times, want 2 (once per object; the old one's uid %s not again)", n, old.GetUID())
	}
}

// statusRace answers every request through next, counting the status
// codes of PATCHes to a /status; before each, race writes the object.
type statusRace struct {
	next  http.RoundTripper
	race  func()
	mu    sync.Mutex
	codes []int
}

func (s *statusRace) RoundTrip(r *http.Request) (*http.Response, error) {
	status := r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/status")
	if status && s.race != nil {
		s.race()
	}
	resp, err := s.next.RoundTrip(r)
	if status && err == nil {
		s.mu.Lock()
		s.codes = append(s.codes, resp.StatusCode)
		s.mu.Unlock()
	}
	return resp, err
}

// TestStatusWriteAfterAnotherWriterStillLands: a status write through the
// subresource is pinned to the resourceVersion the gateway read (the only
// pin the server checks there). Another writer having moved it on makes
// the write read the object again and write again, not fail; one that
// wins every race (another operator of the kind writing as often) gets a
// last unpinned try, so the handler is not called again for its answer.
// One whose write also recorded another state than the gateway's pass
// began from (a replica that took over) ends the write: its status is the
// newer.
func TestStatusWriteAfterAnotherWriterStillLands(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name      string
		races     int  // writes of someone else before the gateway's status writes
		stateToo  bool // the writes also record another state than the pass began from
		wantCodes []int
	}{
		{"moved on once before", 1, false, []int{409, 200}},
		{"moved on before every write", 100, false, []int{409, 409, 409, 409, 200}},
		// Another replica recorded a newer state: its status is the newer.
		{"state recorded by another writer", 1, true, []int{409}},
	} {
		for _, metaOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/metadata answer %v", tt.name, metaOnly), func(t *testing.T) {
				name := fmt.Sprintf("moved-%d", time.Now().UnixNano()%100000)
				stale := createWidget(t, ns, name, 1)
				races := 0
				rec := &statusRace{race: func() {
					if races < tt.races {
						races++
						updateWidget(t, ns, name, func(o *unstructured.Unstructured) {
							o.SetLabels(map[string]string{"someone": fmt.Sprint(races)})
							if tt.stateToo {
								o.SetAnnotations(map[string]string{"opgate.dev/state.moved": "newer"})
							}
						})
					}
				}}
				c := dynamic.ConfigFor(cfg)
				c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec }
				rc, err := rest.UnversionedRESTClientFor(c)
				if err != nil {
					t.Fatal(err)
				}
				a := apply.New(dynamic.New(rc), restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg))))
				read := &apply.StateRead{Key: "opgate.dev/state.moved"} // the pass began without one
				var rv string
				if metaOnly {
					var m *metav1.ObjectMeta
					if m, err = a.WithREST(rc).PatchStatusMeta(ctx, stale, map[string]any{"message": "written"}, true, read); err == nil {
						rv = m.ResourceVersion
					}
				} else {
					var out *unstructured.Unstructured
					if out, err = a.PatchStatus(ctx, stale, map[string]any{"message": "written"}, true, read); err == nil {
						rv = out.GetResourceVersion()
					}
				}
				if !slices.Equal(rec.codes, tt.wantCodes) {
					t.Errorf("status writes answered %v, want %v", rec.codes, tt.wantCodes)
				}
				if tt.stateToo {
					if !errors.Is(err, apply.ErrAnnotationMoved) {
						t.Errorf("status write over another writer's state: %v, want ErrAnnotationMoved", err)
					}
					if err := statusMessage(t, ns, name, ""); err != nil {
						t.Errorf("the write was dropped, yet %v", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("status write from a copy older than the object: %v", err)
				}
				live, err := getWidget(t, ns, name)
				if err != nil {
					t.Fatal(err)
				}
				if msg, _, _ := unstructured.NestedString(live.Object, "status", "message"); msg != "written" || live.GetResourceVersion() != rv {
					t.Errorf("object after the write: status %v, resourceVersion %s (the write answered %s)",
						live.Object["status"], live.GetResourceVersion(), rv)
				}
			})
		}
	}
}

// appliers are the gateway's two ways of writing: through the dynamic
// client, answers read whole, and with its REST client, answers read as
// metadata where the pass needs no more.
func appliers(t *testing.T) (whole, meta *apply.Applier) {
	t.Helper()
	rc, err := rest.UnversionedRESTClientFor(dynamic.ConfigFor(cfg))
	if err != nil {
		t.Fatal(err)
	}
	disco := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	whole = apply.New(dynamic.New(rc), mapper)
	return whole, whole.WithREST(rc)
}
