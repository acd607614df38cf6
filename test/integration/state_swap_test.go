package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// Two replicas may work on one object for a moment: a leader that lost
// its Lease finishes the pass it is in (its record writes outlive the
// cancel) while the new leader starts. Here "another replica" records the
// create as handled while the gateway's create call runs. The gateway's
// state write must not overwrite that record with its own older view: it
// reads the object again and goes on from the other's state, which the
// next round's write then carries (the marker survives), and neither
// create nor update is called twice.
func TestAStateAnotherWriterRecordedDuringAPassIsNotOverwritten(t *testing.T) {
	ns := newNamespace(t)
	const marker = "another-replica"
	var wrote atomic.Bool
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "create" && !wrote.Load() {
			if err := recordAsAnotherReplica(t, ns, req.Object.GetName(), "swap", marker); err != nil {
				t.Errorf("write the other replica's state: %v", err)
			}
			wrote.Store(true)
		}
		return 200, map[string]any{}
	})
	op := operatorFor(t, "swap", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "update", Events: []spec.Event{spec.EventUpdate}},
		}
	})
	startGateway(t, op)
	createWidget(t, ns, "w", 1)
	eventually(t, 20*time.Second, func() error {
		if !wrote.Load() {
			return fmt.Errorf("the other replica has not written its state yet")
		}
		return nil
	})
	updateWidget(t, ns, "w", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	eventually(t, 20*time.Second, func() error {
		if err := called(h, "update", 1); err != nil {
			return err
		}
		return stateHandled(t, ns, "w", "swap")
	})
	w, err := getWidget(t, ns, "w")
	if err != nil {
		t.Fatal(err)
	}
	var st state.State
	raw := w.GetAnnotations()["opgate.dev/state.swap"]
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("state %q: %v", raw, err)
	}
	if st.Requested != marker {
		t.Errorf("the gateway overwrote the state another replica recorded during its pass: %s", raw)
	}
	if n, m := len(h.calls("create")), len(h.calls("update")); n != 1 || m != 1 {
		t.Errorf("create called %d times, update %d, want once each", n, m)
	}
}

// recordAsAnotherReplica writes the state a replica that handled the
// widget's create would write, with marker where a gateway keeps the last
// reconcile request it acted on (a field the gateway carries over).
func recordAsAnotherReplica(t *testing.T, ns, name, operator, marker string) error {
	w, err := getWidget(t, ns, name)
	if err != nil {
		return err
	}
	st := &state.State{UID: string(w.GetUID()), Requested: marker}
	if err := st.SetHandled(essence.Of(w), state.DefaultEssenceCap); err != nil {
		return err
	}
	value, err := st.Encode()
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": w.GetResourceVersion(),
		"annotations":     map[string]any{"opgate.dev/state." + operator: value},
	}})
	if err != nil {
		return err
	}
	_, err = dyn(t).Resource(widgets).Namespace(ns).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil && strings.Contains(err.Error(), "the object has been modified") {
		return fmt.Errorf("the gateway wrote the widget during its create call: %w", err)
	}
	return err
}

// TestSwapAnnotationWritesOnlyOverTheValueItWasGiven holds the state
// write's compare-and-swap to the API server: it writes over the value it
// expects (absent included, with or without other annotations), refuses
// one another writer set or removed since, tells that apart from a value
// the server refuses, and from another object of the name.
func TestSwapAnnotationWritesOnlyOverTheValueItWasGiven(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	_, a := appliers(t)
	const key = "opgate.dev/state.swap"
	str := func(s string) *string { return &s }
	for i, tt := range []struct {
		name     string
		server   map[string]string // the annotations the object has
		copy     map[string]string // those of the caller's copy (server's if nil)
		old      *string
		value    string
		moved    bool
		refused  bool
		replaced bool
		want     map[string]string // the annotations afterwards
	}{
		{name: "first, no annotations", value: "v1", want: map[string]string{key: "v1"}},
		{name: "first, among others", server: map[string]string{"a": "b"}, value: "v1", want: map[string]string{"a": "b", key: "v1"}},
		{name: "over the value read", server: map[string]string{key: "v1", "a": "b"}, old: str("v1"), value: "v2", want: map[string]string{key: "v2", "a": "b"}},
		{name: "over the empty value read", server: map[string]string{key: ""}, old: str(""), value: "v2", want: map[string]string{key: "v2"}},
		{name: "others added since the copy", server: map[string]string{"a": "b"}, copy: map[string]string{}, value: "v1", want: map[string]string{"a": "b", key: "v1"}},
		{name: "others removed since the copy", server: map[string]string{}, copy: map[string]string{"a": "b"}, value: "v1", want: map[string]string{key: "v1"}},
		{name: "set by another since", server: map[string]string{key: "theirs"}, copy: map[string]string{}, value: "v1", moved: true, want: map[string]string{key: "theirs"}},
		{name: "changed by another since", server: map[string]string{key: "theirs"}, copy: map[string]string{key: "v1"}, old: str("v1"), value: "v2", moved: true, want: map[string]string{key: "theirs"}},
		{name: "all annotations removed by another since", server: map[string]string{}, copy: map[string]string{}, old: str("v1"), value: "v2", moved: true, want: nil},
		{name: "removed by another since", server: map[string]string{"a": "b"}, copy: map[string]string{key: "v1", "a": "b"}, old: str("v1"), value: "v2", moved: true, want: map[string]string{"a": "b"}},
		{name: "too large", server: map[string]string{key: "v1"}, old: str("v1"), value: strings.Repeat("x", 300<<10), refused: true, want: map[string]string{key: "v1"}},
		{name: "another object of the name", value: "v1", replaced: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("swap-%d", i)
			w := widget(ns, name, 1)
			w.SetAnnotations(tt.server)
			live, err := dyn(t).Resource(widgets).Namespace(ns).Create(ctx, w, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			obj := live.DeepCopy()
			if tt.copy != nil {
				obj.SetAnnotations(tt.copy)
			}
			if tt.replaced {
				deleteWidget(t, ns, name)
				waitWidgetGone(t, ns, name)
				live = createWidget(t, ns, name, 1)
			}
			m, err := a.SwapAnnotationMeta(ctx, obj, key, tt.old, tt.value)
			switch {
			case tt.moved != errors.Is(err, apply.ErrAnnotationMoved):
				t.Errorf("err %v, want moved %v", err, tt.moved)
			case tt.replaced != errors.Is(err, apply.ErrReplaced):
				t.Errorf("err %v, want replaced %v", err, tt.replaced)
			case tt.refused != apierrors.IsInvalid(err):
				t.Errorf("err %v, want refused %v", err, tt.refused)
			case err == nil && m.Annotations[key] != tt.value:
				t.Errorf("answer's annotation %q, want %q", m.Annotations[key], tt.value)
			}
			got, err := getWidget(t, ns, name)
			if err != nil {
				t.Fatal(err)
			}
			if got.GetUID() != live.GetUID() || !maps.Equal(got.GetAnnotations(), tt.want) {
				t.Errorf("annotations afterwards %v, want %v", got.GetAnnotations(), tt.want)
			}
		})
	}
}
