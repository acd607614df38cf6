package integration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/spec"
)

// Two operators on an object whose annotations are already large: each
// essence fits the per-operator cap, but both together would pass the API
// server's 256 KiB limit on an object's annotations. The state writes must
// succeed (the essence of the one that does not fit is dropped), each
// create runs exactly once, and the update that follows tells the handler
// that old and diff are unavailable rather than leaving them out silently.
func TestBigEssencesOfTwoOperatorsStayUnderTheAnnotationLimit(t *testing.T) {
	ns := newNamespace(t)
	ops := []string{"big-a", "big-b"}
	handlers := map[string]*handler{}
	var list []*spec.WebhookOperator
	for _, name := range ops {
		h := newHandler(t, ok(nil))
		handlers[name] = h
		list = append(list, operatorFor(t, name, ns, h.URL, func(s *spec.OperatorSpec) {
			s.Callbacks = []spec.Callback{
				{ID: "create", Events: []spec.Event{spec.EventCreate}},
				{ID: "update", Events: []spec.Event{spec.EventUpdate}},
			}
		}))
	}
	startGateway(t, list...)

	w := widget(ns, "big", 1)
	// ~180 KiB of user annotations (compressible: they add little to an
	// essence), and 48 KiB of random text in the spec (incompressible: each
	// operator's state annotation takes ~50 KiB).
	ann := map[string]string{}
	for i := range 3 {
		ann[fmt.Sprintf("example.com/note-%d", i)] = strings.Repeat(fmt.Sprintf("note %d; ", i), 60<<10/8)
	}
	w.SetAnnotations(ann)
	_ = unstructured.SetNestedField(w.Object, randomText(t, 48<<10), "spec", "image")
	if _, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create widget: %v", err)
	}
	eventually(t, 30*time.Second, func() error {
		for _, name := range ops {
			if st := stateOf(t, ns, "big", name); st.H == "" || st.R != nil {
				return fmt.Errorf("operator %s: state not written or round in progress (handled %q)", name, st.H)
			}
		}
		return nil
	})
	before := map[string]string{}
	for _, name := range ops {
		before[name] = stateOf(t, ns, "big", name).H
	}

	updateWidget(t, ns, "big", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	eventually(t, 30*time.Second, func() error {
		for _, name := range ops {
			if st := stateOf(t, ns, "big", name); st.H == before[name] || st.R != nil {
				return fmt.Errorf("operator %s has not handled the update yet", name)
			}
		}
		return nil
	})

	unavailable := 0
	for _, name := range ops {
		h := handlers[name]
		if n := len(h.calls("create")); n != 1 {
			t.Errorf("operator %s: create called %d times, want exactly once (a refused state write re-invokes it)", name, n)
		}
		updates := h.calls("update")
		if len(updates) != 1 {
			t.Errorf("operator %s: update called %d times, want once", name, len(updates))
			continue
		}
		u := updates[0]
		switch {
		case u.OldUnavailable && u.Old == nil && u.Diff == nil:
			unavailable++
		case !u.OldUnavailable && u.Old != nil && len(u.Diff) == 1 && u.Diff[0].Path == "spec.size":
		default:
			t.Errorf("operator %s: update has oldUnavailable=%v, old present=%v, diff %+v; want either old with the spec.size diff, or neither and oldUnavailable",
				name, u.OldUnavailable, u.Old != nil, u.Diff)
		}
	}
	if unavailable == 0 {
		t.Errorf("every update carried old: both essences cannot fit the object's annotations, one must have been dropped")
	}
	obj, err := getWidget(t, ns, "big")
	if err != nil {
		t.Fatal(err)
	}
	if size := annotationsSize(obj.GetAnnotations()); size > 256<<10 {
		t.Errorf("annotations take %d bytes, over the API server's limit", size)
	}
}

// stateOf decodes the parts of an operator's state annotation the tests
// look at (never printing it: it may be large).
func stateOf(t *testing.T, ns, name, operator string) (st struct {
	H string          `json:"h"`
	U string          `json:"u"`
	R json.RawMessage `json:"r"`
}) {
	t.Helper()
	w, err := getWidget(t, ns, name)
	if err != nil {
		t.Fatalf("get widget: %v", err)
	}
	if v := w.GetAnnotations()["opgate.dev/state."+operator]; v != "" {
		if err := json.Unmarshal([]byte(v), &st); err != nil {
			t.Fatalf("state annotation of %s: %v", operator, err)
		}
	}
	return st
}

func annotationsSize(ann map[string]string) int {
	n := 0
	for k, v := range ann {
		n += len(k) + len(v)
	}
	return n
}

// randomText is n characters of incompressible base64.
func randomText(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n*3/4+3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// An object deleted and re-created under the same name while a pass over
// the old one is in flight is a new object: its create runs and its timer
// starts afresh, whatever the old object's pass wrote (by name) or
// remembered. The pass blocks in one callback of the old object while the
// test deletes and re-creates it.
func TestRecreatedObjectIsNewToTheGateway(t *testing.T) {
	for _, block := range []string{"create", "tick"} {
		t.Run("pass of the old object blocked in "+block, func(t *testing.T) {
			ns := newNamespace(t)
			var oldUID types.UID
			var mu sync.Mutex
			release := make(chan struct{})
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				mu.Lock()
				uid := oldUID
				mu.Unlock()
				if req.Callback == block && req.Object.GetUID() == uid {
					<-release
				}
				return 200, nil
			})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unblock) // before the handler's Close, which waits for it
			startGateway(t, operatorFor(t, "recreate", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Handler.Timeout = &spec.Duration{Duration: time.Minute}
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "tick", Events: []spec.Event{spec.EventTimer}, Interval: &spec.Duration{Duration: time.Hour}},
				}
			}))
			mu.Lock()
			oldUID = createWidget(t, ns, "example", 1).GetUID()
			mu.Unlock()
			eventually(t, 20*time.Second, func() error { return calledFor(h, block, oldUID, 1) })

			if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			waitWidgetGone(t, ns, "example")
			newUID := createWidget(t, ns, "example", 1).GetUID()
			// The witness's create proves the gateway's informer has seen
			// the re-created object (events of one watch arrive in order).
			witness := createWidget(t, ns, "witness", 1).GetUID()
			eventually(t, 20*time.Second, func() error { return calledFor(h, "create", witness, 1) })
			unblock()

			eventually(t, 20*time.Second, func() error {
				if err := calledFor(h, "create", newUID, 1); err != nil {
					return fmt.Errorf("%w: the re-created object was taken for the old one", err)
				}
				if err := calledFor(h, "tick", newUID, 1); err != nil {
					return fmt.Errorf("%w: the old object's timer schedule carried over", err)
				}
				return nil
			})
			if err := calledFor(h, "create", newUID, 2); err == nil {
				t.Errorf("create called more than once for the re-created object")
			}
		})
	}
}

// A state annotation that arrives with an object's manifest (kubectl get -o
// yaml | kubectl apply, a restore from backup) belongs to the object it was
// written for: on another object, create runs. A state written before the
// gateway recorded uids is adopted: create does not run again.
func TestStateAnnotationOfAnotherObjectDoesNotSkipCreate(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	startGateway(t, operatorFor(t, "copier", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
	}))
	orig := createWidget(t, ns, "original", 1)
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "original", "copier") })
	got, err := getWidget(t, ns, "original")
	if err != nil {
		t.Fatal(err)
	}
	copied := got.GetAnnotations()["opgate.dev/state.copier"]
	legacy := fmt.Sprintf(`{"h":%q}`, essence.Digest(essence.Of(widget(ns, "any", 1))))

	tests := []struct {
		name, value string
		wantCreate  bool
	}{
		{"copied from another object", copied, true},
		{"written without a uid by an older gateway", legacy, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("copy-%d", i)
			w := widget(ns, name, 1)
			w.SetAnnotations(map[string]string{"opgate.dev/state.copier": tt.value})
			out, err := dyn(t).Resource(widgets).Namespace(ns).Create(context.Background(), w, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create widget: %v", err)
			}
			if tt.wantCreate {
				eventually(t, 20*time.Second, func() error {
					if err := calledFor(h, "create", out.GetUID(), 1); err != nil {
						return fmt.Errorf("%w: the copied state made the gateway skip create", err)
					}
					return nil
				})
			}
			// Settled: the state records this object's uid, no round open.
			eventually(t, 20*time.Second, func() error {
				st := stateOf(t, ns, name, "copier")
				if st.U != string(out.GetUID()) || st.H == "" || st.R != nil {
					return fmt.Errorf("state records uid %q (want the object's %q), handled %q, round %s", st.U, out.GetUID(), st.H, st.R)
				}
				return nil
			})
			if !tt.wantCreate && calledFor(h, "create", out.GetUID(), 1) == nil {
				t.Errorf("create called for an object whose state (without a uid) says it was handled")
			}
			if calledFor(h, "create", out.GetUID(), 2) == nil {
				t.Errorf("create called more than once")
			}
		})
	}
	if err := calledFor(h, "create", orig.GetUID(), 2); err == nil {
		t.Errorf("create called twice for the original object")
	}
}

// calledFor reports whether callback was called at least n times for the
// object with uid.
func calledFor(h *handler, callback string, uid types.UID, n int) error {
	got := 0
	for _, r := range h.calls(callback) {
		if r.Object.GetUID() == uid {
			got++
		}
	}
	if got < n {
		return fmt.Errorf("%s called %d times for uid %s, want %d", callback, got, uid, n)
	}
	return nil
}
