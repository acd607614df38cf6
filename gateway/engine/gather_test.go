package engine

import (
	"context"
	"log/slog"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// rediscovered is a REST mapper that answers from its cache until Reset,
// then from what discovery serves now, as the gateway's deferred discovery
// mapper does.
type rediscovered struct {
	meta.RESTMapper
	now meta.RESTMapper
}

func (m *rediscovered) Reset() { m.RESTMapper = m.now }

// A kind whose CRD cannot be found is waited for as a missing kind, not
// taken for a built-in one: run without status checks, an operator would
// never check them, even once the CRD is back.
func TestAKindWhoseCRDIsMissingIsWaitedForUnlessBuiltIn(t *testing.T) {
	gizmo := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Gizmo"}
	configMap := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	mapper := func(gvks ...schema.GroupVersionKind) meta.RESTMapper {
		m := meta.NewDefaultRESTMapper(nil)
		for _, gvk := range gvks {
			m.Add(gvk, meta.RESTScopeNamespace)
		}
		return m
	}
	for _, tt := range []struct {
		name       string
		kind       schema.GroupVersionKind
		served     meta.RESTMapper // by discovery now
		crd        *unstructured.Unstructured
		wantReason string // of the error; "" for none
		wantSchema bool   // a status schema (perhaps still unknown)
	}{
		{"custom kind with its CRD", gizmo, mapper(gizmo), crdWithStatus("a", 1), "", true},
		{"custom kind whose CRD was deleted", gizmo, mapper(), nil, spec.ReasonKindNotFound, false},
		// An aggregated API, or discovery a moment behind a deletion: the
		// CRD is watched for, in case it is one.
		{"custom kind served without CRD", gizmo, mapper(gizmo), nil, "", true},
		{"built-in kind", configMap, mapper(), nil, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			if tt.crd != nil {
				objs = append(objs, tt.crd)
			}
			dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
				map[schema.GroupVersionResource]string{crdResource: "CustomResourceDefinitionList"}, objs...)
			m := &rediscovered{RESTMapper: mapper(tt.kind), now: tt.served}
			pm, err := m.RESTMapping(tt.kind.GroupKind(), tt.kind.Version)
			if err != nil {
				t.Fatal(err)
			}
			c := &Controller{Deps: Deps{Dynamic: dyn, Mapper: m}, log: slog.New(slog.DiscardHandler),
				op:     &spec.WebhookOperator{Spec: spec.OperatorSpec{Watch: spec.WatchSpec{APIVersion: tt.kind.GroupVersion().String(), Kind: tt.kind.Kind}}},
				parent: &watched{mapping: pm}}
			s, err := c.loadStatusChecker(context.Background())
			reason := ""
			if err != nil {
				reason = failure.As(err).Reason
			}
			if reason != tt.wantReason {
				t.Fatalf("error %v (reason %q), want reason %q", err, reason, tt.wantReason)
			}
			if (s != nil) != tt.wantSchema {
				t.Fatalf("status schema %v, want one: %v", s, tt.wantSchema)
			}
			if s != nil && (s.current() != nil) != (tt.crd != nil) {
				t.Errorf("status checker %v, want one only when the CRD was read", s.current())
			}
		})
	}
}
