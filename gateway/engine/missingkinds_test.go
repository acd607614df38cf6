package engine

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

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
	_, missing, err := mapKind(mapper, "children[1]", "bolts.example/v1", "Bolt")
	if missing == nil || err != nil {
		t.Fatalf("Bolt mapped as missing? %v", err)
	}
	return *missing
}

// discoveryDown misses every kind at its version and cannot tell which
// versions are served.
type discoveryDown struct{ meta.RESTMapper }

func (discoveryDown) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
}

func (discoveryDown) RESTMappings(schema.GroupKind, ...string) ([]*meta.RESTMapping, error) {
	return nil, errors.New("discovery: connection refused")
}

// A child or related kind is run without only when the API server serves
// it at no version: one still served at another version (its CRD set
// served: false on the declared one) has objects, so the operator fails
// to start, KindNotFound, naming the versions served and the field to
// change, rather than sending the kind empty and letting parents go while
// their children stay (rv45).
func TestAKindIsRunWithoutOnlyWhenNoVersionOfItIsServed(t *testing.T) {
	// As discovery builds it: each group-version its own default.
	served := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Group: "bolts.example", Version: "v2"}})
	served.Add(schema.GroupVersionKind{Group: "bolts.example", Version: "v2", Kind: "Bolt"}, meta.RESTScopeRoot)
	for _, tt := range []struct {
		name        string
		mapper      meta.RESTMapper
		apiVersion  string
		wantMapped  bool
		wantMissing bool
		wantReason  string
		wantInErr   []string
	}{
		{"served at the declared version", served, "bolts.example/v2", true, false, "", nil},
		{"served at no version", meta.NewDefaultRESTMapper(nil), "bolts.example/v1", false, true, "", nil},
		{"served at another version only", served, "bolts.example/v1", false, false, spec.ReasonKindNotFound,
			[]string{"bolts.example/v1 Bolt (spec.children[1]) is not served", "bolts.example/v2", "spec.children[1].apiVersion"}},
		{"discovery failing", discoveryDown{served}, "bolts.example/v1", false, false, spec.ReasonAPIServerUnreachable,
			[]string{"connection refused"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, missing, err := mapKind(tt.mapper, "children[1]", tt.apiVersion, "Bolt")
			if (m != nil) != tt.wantMapped || (missing != nil) != tt.wantMissing {
				t.Fatalf("mapping %v, missing %v (err %v); want mapped %v, missing %v", m, missing, err, tt.wantMapped, tt.wantMissing)
			}
			if tt.wantReason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			f := failure.As(err)
			if f.Reason != tt.wantReason || f.Class != failure.Temporary {
				t.Fatalf("err = %v (%v %s), want temporary %s", err, f.Class, f.Reason, tt.wantReason)
			}
			for _, want := range tt.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q, want it to name %q", err, want)
				}
			}
		})
	}
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
