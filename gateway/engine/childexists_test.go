package engine

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/metrics"
)

// TestAnswerNamingAnObjectNotMadeForTheOperatorIsRefused: a child no
// operator of the gateway sees is read from the API server, once; one that
// exists without the operator's label (a user's, Helm's, another
// operator's) refuses the answer, ChildExists, temporary, naming the cures;
// one with the label (the cache lagging behind its creation) is applied. A
// child the caches hold is never read. While the parent is being deleted
// the refused child is left out, with a Normal Event.
func TestAnswerNamingAnObjectNotMadeForTheOperatorIsRefused(t *testing.T) {
	labelled := func(name string, labels map[string]string) *unstructured.Unstructured {
		o := testObject("ConfigMap", "ns", name, "uid-"+name, nil)
		o.SetLabels(labels)
		return o
	}
	a := testObject("Widget", "ns", "a", "uid-a", nil)
	gone := testObject("Widget", "ns", "gone", "uid-gone", nil)
	for _, tt := range []struct {
		name     string
		existing *unstructured.Unstructured // in the API server, seen by no operator
		cached   bool                       // x's cache holds the child (of a)
		theirs   bool                       // y's cache holds it, its parent gone
		filling  bool                       // y's caches have not synced
		deleting bool                       // the parent is being deleted
		getErr   error
		reason   string // of the refusal; "": the child is applied
		reads    int
	}{
		{name: "nothing of that name", reads: 1},
		{name: "a user's", existing: labelled("c", map[string]string{"app": "users"}), reason: ReasonChildExists, reads: 1},
		{name: "another operator's", existing: labelled("c", map[string]string{check.OperatorLabel: "z"}), reason: ReasonChildExists, reads: 1},
		{name: "the operator's, not cached yet", existing: labelled("c", map[string]string{check.OperatorLabel: "x"}), reads: 1},
		{name: "the operator's, cached", cached: true},
		{name: "the parent's own, its labels taken off", existing: testObject("ConfigMap", "ns", "c", "uid-c", a), reads: 1},
		{name: "the parent's own by label, its operator label taken off", existing: labelled("c", map[string]string{check.OwnerUIDLabel: "uid-a"}), reads: 1},
		{name: "another parent's, its labels taken off", existing: testObject("ConfigMap", "ns", "c", "uid-c", gone), reason: ReasonChildExists, reads: 1},
		{name: "another running operator's, its parent gone", theirs: true},
		{name: "another operator's whose caches are filling", existing: labelled("c", map[string]string{check.OperatorLabel: "y"}), theirs: true, filling: true, reason: ReasonChildExists, reads: 1},
		{name: "a user's, the parent deleting", existing: labelled("c", nil), deleting: true, reads: 1},
		{name: "unreadable", getErr: apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "c", nil), reason: "ApplyForbidden", reads: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			if tt.existing != nil {
				objs = append(objs, tt.existing)
			}
			dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), objs...)
			if tt.getErr != nil {
				dyn.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tt.getErr })
			}
			var mine, others []*unstructured.Unstructured
			if tt.cached {
				mine = append(mine, testObject("ConfigMap", "ns", "c", "uid-c", a))
			}
			if tt.theirs {
				others = append(others, testObject("ConfigMap", "ns", "c", "uid-c", gone))
			}
			x := peerController(t, "x", []*unstructured.Unstructured{a}, mine)
			y := peerController(t, "y", nil, others)
			y.running.Store(!tt.filling)
			var ps peers
			ps.add(x)
			ps.add(y)
			m, err := metrics.New(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			rec := record.NewFakeRecorder(10)
			x.Deps = Deps{Recorder: rec, Metrics: m, ChildOwners: &ps}
			x.log = slog.New(slog.DiscardHandler)
			cm := &meta.RESTMapping{Resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
				GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Scope: meta.RESTScopeNamespace}
			x.applier = apply.New(dyn, nil).Pinned(cm)

			parent := a.DeepCopy()
			if tt.deleting {
				now := metav1.Now()
				parent.SetDeletionTimestamp(&now)
			}
			child := testObject("ConfigMap", "ns", "c", "", nil)
			out, err := x.refuseForeignChildren(context.Background(), &pass{key: "ns/a", obj: parent}, []*unstructured.Unstructured{child})
			reads := 0
			for _, act := range dyn.Actions() {
				if act.GetVerb() == "get" {
					reads++
				}
			}
			if reads != tt.reads {
				t.Errorf("%d reads of the child from the API server, want %d", reads, tt.reads)
			}
			switch {
			case tt.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.reason != "":
				f := failure.As(err)
				if err == nil || f.Reason != tt.reason || f.Class != failure.Temporary {
					t.Fatalf("error %v, want a temporary %s", err, tt.reason)
				}
				if tt.reason == ReasonChildExists {
					for _, part := range []string{"ConfigMap ns/c", "delete it", check.OperatorLabel + "=x"} {
						if !strings.Contains(err.Error(), part) {
							t.Errorf("message %q does not say %q", err.Error(), part)
						}
					}
				}
				return
			}
			want := 1
			if tt.deleting {
				want = 0
				select {
				case e := <-rec.Events:
					if !strings.HasPrefix(e, "Normal "+ReasonChildExists) {
						t.Errorf("Event %q, want a Normal %s", e, ReasonChildExists)
					}
				default:
					t.Errorf("no Event for the child left out")
				}
			}
			if len(out) != want {
				t.Errorf("%d children to apply, want %d", len(out), want)
			}
		})
	}
}
