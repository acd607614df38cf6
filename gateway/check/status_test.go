package check

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/failure"
)

// memcachedCRD is the guide's Memcached with a few more status fields, one
// per kind of rule the checker must honour. The root requires spec, which a
// status-only check must not trip over.
const memcachedCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: memcacheds.cache.example.com}
spec:
  group: cache.example.com
  names: {kind: Memcached, plural: memcacheds}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
          status:
            type: object
            required: [phase]
            properties:
              nodes: {type: array, items: {type: string}}
              phase: {type: string, enum: [Pending, Ready], default: Pending}
              replicas: {type: integer, minimum: 0, maximum: 10}
              observed:
                type: object
                required: [generation]
                properties:
                  generation: {type: integer}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// preserveCRD keeps anything in status and has no status subresource.
const preserveCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
spec:
  group: example.com
  names: {kind: Thing, plural: things}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// noStatusCRD has a status subresource but no status in its schema, so the
// server prunes all of status.
const noStatusCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: bare.example.com}
spec:
  group: example.com
  names: {kind: Bare, plural: bare}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

func parseCRD(t *testing.T, doc string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict([]byte(doc), crd); err != nil {
		t.Fatalf("parse CRD: %v", err)
	}
	return crd
}

func newChecker(t *testing.T, doc string) *StatusChecker {
	t.Helper()
	crd := parseCRD(t, doc)
	c, err := NewStatusChecker(crd, crd.Spec.Versions[0].Name)
	if err != nil {
		t.Fatalf("NewStatusChecker: %v", err)
	}
	return c
}

func TestStatusCheckerCheck(t *testing.T) {
	tests := []struct {
		name       string
		crd        string
		current    map[string]any
		patch      map[string]any
		wantMerged map[string]any
		wantPruned []string
		// wantErr are substrings of the InvalidStatus failure; empty means valid.
		wantErr []string
	}{
		{
			name:       "valid patch merges into the current status",
			crd:        memcachedCRD,
			current:    map[string]any{"phase": "Ready", "nodes": []any{"a"}},
			patch:      map[string]any{"nodes": []any{"a", "b"}},
			wantMerged: map[string]any{"phase": "Ready", "nodes": []any{"a", "b"}},
		},
		{
			name:       "unknown field is pruned and reported",
			crd:        memcachedCRD,
			current:    map[string]any{"phase": "Ready"},
			patch:      map[string]any{"nodez": []any{"a"}},
			wantMerged: map[string]any{"phase": "Ready"},
			wantPruned: []string{"status.nodez"},
		},
		{
			name:       "unknown nested fields are pruned and reported in order",
			crd:        memcachedCRD,
			patch:      map[string]any{"phase": "Ready", "observed": map[string]any{"generation": 1, "gen": 2, "age": 3}},
			wantMerged: map[string]any{"phase": "Ready", "observed": map[string]any{"generation": int64(1)}},
			wantPruned: []string{"status.observed.age", "status.observed.gen"},
		},
		{
			name:    "number where the schema wants an array is invalid",
			crd:     memcachedCRD,
			current: map[string]any{"phase": "Ready"},
			patch:   map[string]any{"nodes": 3},
			wantErr: []string{"status.nodes", "must be of type array"},
		},
		{
			name:    "every violation is listed with its path",
			crd:     memcachedCRD,
			patch:   map[string]any{"phase": "Broken", "replicas": 11, "observed": map[string]any{}},
			wantErr: []string{"status.phase", `"Broken"`, "status.replicas", "less than or equal to 10", "status.observed.generation: Required"},
		},
		{
			name:       "null deletes a key",
			crd:        memcachedCRD,
			current:    map[string]any{"phase": "Ready", "nodes": []any{"a"}},
			patch:      map[string]any{"nodes": nil},
			wantMerged: map[string]any{"phase": "Ready"},
		},
		{
			name:       "null deletes a nested key and keeps its siblings",
			crd:        memcachedCRD,
			current:    map[string]any{"phase": "Ready", "extra": map[string]any{"a": "1", "b": "2"}},
			patch:      map[string]any{"extra": map[string]any{"a": nil}},
			wantMerged: map[string]any{"phase": "Ready", "extra": map[string]any{"b": "2"}},
		},
		{
			// The server defaults before it validates.
			name:       "required field with a default is not missing",
			crd:        memcachedCRD,
			patch:      map[string]any{"nodes": []any{"a"}},
			wantMerged: map[string]any{"nodes": []any{"a"}},
		},
		{
			name:       "integer decoded from JSON as float64 is an integer",
			crd:        memcachedCRD,
			patch:      map[string]any{"phase": "Ready", "replicas": float64(3)},
			wantMerged: map[string]any{"phase": "Ready", "replicas": int64(3)},
		},
		{
			name:       "preserve-unknown-fields subtree keeps everything",
			crd:        memcachedCRD,
			patch:      map[string]any{"phase": "Ready", "extra": map[string]any{"anything": map[string]any{"deep": true}}},
			wantMerged: map[string]any{"phase": "Ready", "extra": map[string]any{"anything": map[string]any{"deep": true}}},
		},
		{
			name:       "preserve-unknown-fields status keeps everything",
			crd:        preserveCRD,
			current:    map[string]any{"old": "x"},
			patch:      map[string]any{"nodez": []any{"a"}, "n": 3},
			wantMerged: map[string]any{"old": "x", "nodez": []any{"a"}, "n": int64(3)},
		},
		{
			name:       "status without a schema is pruned whole and not validated",
			crd:        noStatusCRD,
			patch:      map[string]any{"nodes": []any{"a"}},
			wantMerged: map[string]any{},
			wantPruned: []string{"status"},
		},
		{
			name:       "an object replacing a scalar keeps none of its nulls (RFC 7386)",
			crd:        preserveCRD,
			current:    map[string]any{"a": "x", "b": map[string]any{"c": "1"}},
			patch:      map[string]any{"a": map[string]any{"b": nil, "c": 1}, "d": map[string]any{"e": nil}},
			wantMerged: map[string]any{"a": map[string]any{"c": int64(1)}, "b": map[string]any{"c": "1"}, "d": map[string]any{}},
		},
		{
			// The API server's merge patch (evanphx/json-patch) also drops
			// nulls from objects in lists; RFC 7386 would keep them.
			name:       "a list replaces a list whole, without the nulls of its objects, as on the server",
			crd:        preserveCRD,
			current:    map[string]any{"nodes": []any{"a", map[string]any{"x": 1}}},
			patch:      map[string]any{"nodes": []any{map[string]any{"y": nil, "z": 2}}},
			wantMerged: map[string]any{"nodes": []any{map[string]any{"z": int64(2)}}},
		},
		{
			name:       "nil patch keeps the current status",
			crd:        memcachedCRD,
			current:    map[string]any{"phase": "Ready"},
			wantMerged: map[string]any{"phase": "Ready"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChecker(t, tt.crd)
			currentBefore, patchBefore := deepCopyAny(tt.current), deepCopyAny(tt.patch)

			merged, pruned, err := c.Check(tt.current, tt.patch)

			if !reflect.DeepEqual(any(tt.current), currentBefore) || !reflect.DeepEqual(any(tt.patch), patchBefore) {
				t.Errorf("Check modified its inputs: current %v, patch %v", tt.current, tt.patch)
			}
			if len(tt.wantErr) > 0 {
				assertInvalidStatus(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Check: unexpected error: %v", err)
			}
			if !reflect.DeepEqual(merged, tt.wantMerged) {
				t.Errorf("merged = %#v, want %#v", merged, tt.wantMerged)
			}
			if !reflect.DeepEqual(pruned, tt.wantPruned) {
				t.Errorf("pruned = %q, want %q", pruned, tt.wantPruned)
			}
		})
	}
}

func assertInvalidStatus(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Check accepted the status, want InvalidStatus containing %q", want)
	}
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Class != failure.Permanent || fe.Reason != ReasonInvalidStatus {
		t.Errorf("error = %#v, want a permanent %s failure", err, ReasonInvalidStatus)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// deepCopyAny copies the test inputs, which may hold plain ints that
// runtime.DeepCopyJSON would reject.
func deepCopyAny(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopyAny(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopyAny(e)
		}
		return out
	default:
		return v
	}
}

func TestHasStatusSubresource(t *testing.T) {
	tests := []struct {
		name string
		crd  string
		want bool
	}{
		{"CRD with the status subresource has it", memcachedCRD, true},
		{"CRD without subresources has none", preserveCRD, false},
		{"status subresource counts even without a status schema", noStatusCRD, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newChecker(t, tt.crd).HasStatusSubresource(); got != tt.want {
				t.Errorf("HasStatusSubresource() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewStatusCheckerRefuses(t *testing.T) {
	noSchema := parseCRD(t, memcachedCRD)
	noSchema.Spec.Versions[0].Schema = nil

	tests := []struct {
		name    string
		crd     *apiextensionsv1.CustomResourceDefinition
		version string
		wantErr string
	}{
		{"nil CRD", nil, "v1alpha1", "CRD is nil"},
		{"unknown version", parseCRD(t, memcachedCRD), "v2", `no version "v2"`},
		{"version without schema", noSchema, "v1alpha1", "no openAPIV3Schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewStatusChecker(tt.crd, tt.version)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewStatusChecker error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
