package engine

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// servedLater is a RESTMapper that serves its kinds once served is set,
// with the Reset the engine's Deps ask for.
type servedLater struct {
	*meta.DefaultRESTMapper
	served atomic.Bool
}

func (m *servedLater) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if !m.served.Load() {
		return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
	}
	return m.DefaultRESTMapper.RESTMapping(gk, versions...)
}

func (*servedLater) Reset() {}

func boltMissing(t *testing.T, mapper meta.RESTMapper) missingKind {
	t.Helper()
	_, err := apply.Mapping(mapper, "bolts.example/v1", "Bolt")
	if !kindMissing(err) {
		t.Fatalf("Bolt mapped as missing? %v", err)
	}
	return missingKind{role: "children[1]", apiVersion: "bolts.example/v1", kind: "Bolt", err: err}
}

// A child of a kind the controller runs without fails the answer before
// anything is applied, temporarily and naming the kind's CRD; while its
// parent is being deleted it is left out instead, so the delete callback's
// answer does not hold the parent for a CRD nobody may install again.
func TestChildrenOfAMissingKindFailTemporarilyOrAreLeftOutOnDeletion(t *testing.T) {
	c := &Controller{log: slog.New(slog.DiscardHandler)}
	c.missing = []missingKind{boltMissing(t, meta.NewDefaultRESTMapper(nil))}
	child := func(apiVersion, kind, name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetName(name)
		return u
	}
	cm := child("v1", "ConfigMap", "cm")
	bolt := child("bolts.example/v2", "Bolt", "b") // any version of the kind
	for _, tt := range []struct {
		name     string
		deleting bool
		desired  []*unstructured.Unstructured
		want     []string // names kept; nil with wantErr
		wantErr  bool
	}{
		{"no child of the kind", false, []*unstructured.Unstructured{cm}, []string{"cm"}, false},
		{"a child of the kind", false, []*unstructured.Unstructured{cm, bolt}, nil, true},
		{"a child of the kind, parent deleted", true, []*unstructured.Unstructured{cm, bolt}, []string{"cm"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parent := child("test.opgate.dev/v1", "Widget", "w")
			if tt.deleting {
				parent.SetDeletionTimestamp(&metav1.Time{Time: time.Now()})
			}
			got, err := c.refuseMissingChildren(&pass{key: "ns/w", obj: parent}, tt.desired)
			if tt.wantErr {
				f := failure.As(err)
				if err == nil || f.Class != failure.Temporary || f.Reason != spec.ReasonKindNotFound || !strings.Contains(err.Error(), "the CRD of Bolt") || !strings.Contains(err.Error(), "spec.children[1]") {
					t.Fatalf("err = %v (%v %s), want a temporary KindNotFound naming the CRD of Bolt and spec.children[1]", err, f.Class, f.Reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, u := range got {
				names = append(names, u.GetName())
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("kept %v, want %v", names, tt.want)
			}
		})
	}
}

// Requests carry a missing kind's key with no objects, and Health says
// KindNotFound naming it once the controller runs.
func TestAMissingKindIsEmptyInRequestsAndNamedByHealth(t *testing.T) {
	c := &Controller{op: &spec.WebhookOperator{}, changed: make(chan struct{}, 1)}
	c.missing = []missingKind{boltMissing(t, meta.NewDefaultRESTMapper(nil))}
	c.running.Store(true)
	out := map[string]map[string]childObject{}
	addMissing(c, "children", out)
	if objs, ok := out["bolts.example/v1/Bolt"]; !ok || len(objs) != 0 {
		t.Errorf("children = %v, want bolts.example/v1/Bolt with no objects", out)
	}
	rel := map[string]map[string]*unstructured.Unstructured{}
	addMissing(c, "related", rel)
	if len(rel) != 0 {
		t.Errorf("related = %v, want nothing of a missing child kind", rel)
	}
	ready, reason, msg := c.Health()
	if ready || reason != spec.ReasonKindNotFound || !strings.Contains(msg, "children[1] bolts.example/v1 Bolt") {
		t.Errorf("Health = %v %s %q, want not ready, KindNotFound naming children[1] bolts.example/v1 Bolt", ready, reason, msg)
	}
}

// Once a kind the controller runs without is served, Run is asked to end
// (errKindRescoped) so that the Manager builds the controller with it; not
// before.
func TestAMissingKindServedRebuildsTheController(t *testing.T) {
	mapper := &servedLater{DefaultRESTMapper: meta.NewDefaultRESTMapper(nil)}
	mapper.Add(schema.GroupVersionKind{Group: "bolts.example", Version: "v1", Kind: "Bolt"}, meta.RESTScopeNamespace)
	c := &Controller{Deps: Deps{Mapper: mapper}, log: slog.New(slog.DiscardHandler),
		rescope: make(chan struct{}, 1), missingRecheck: 5 * time.Millisecond}
	c.missing = []missingKind{boltMissing(t, mapper)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.awaitMissingKinds(ctx)
	}()
	select {
	case <-c.rescope:
		t.Fatal("rebuild asked for while the kind is still missing")
	case <-time.After(50 * time.Millisecond): // ten rechecks
	}
	mapper.served.Store(true)
	select {
	case <-c.rescope:
	case <-time.After(10 * time.Second):
		t.Fatal("the kind is served, yet no rebuild was asked for")
	}
	<-done // it stops asking once it asked
}
