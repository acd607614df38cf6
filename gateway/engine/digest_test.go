package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The sync digest is the same for what the pass wrote, wherever it
// appears, and for anyone's opgate bookkeeping; it differs for anything
// else.
func TestSyncDigestSeesWritesAndBookkeepingAsNoChange(t *testing.T) {
	thing := func(name, uid, apiVersion string, edit func(m map[string]any)) *unstructured.Unstructured {
		m := map[string]any{
			"apiVersion": apiVersion, "kind": "Thing",
			"metadata": map[string]any{"name": name, "uid": uid, "resourceVersion": "1"},
			"spec":     map[string]any{"size": int64(1)},
		}
		if edit != nil {
			edit(m)
		}
		return &unstructured.Unstructured{Object: m}
	}
	meta := func(m map[string]any) map[string]any { return m["metadata"].(map[string]any) }
	written := func(m map[string]any) {
		m["status"] = map[string]any{"message": "synced"}
		meta(m)["resourceVersion"] = "2"
	}
	related := func(objs ...*unstructured.Unstructured) map[string]map[string]*unstructured.Unstructured {
		out := map[string]map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			k := kindKey(o.GetAPIVersion(), o.GetKind())
			if out[k] == nil {
				out[k] = map[string]*unstructured.Unstructured{}
			}
			out[k][o.GetName()] = o
		}
		return out
	}
	before := syncDigest(thing("a", "ua", "x/v1", nil), children{"x/v1/Thing": {"c": thing("c", "uc", "x/v1", nil)}},
		related(thing("a", "ua", "x/v1", nil), thing("c", "uc", "x/v1", nil), thing("r", "ur", "x/v1", nil)))
	for _, tt := range []struct {
		name    string
		parent  func(m map[string]any)
		child   func(m map[string]any)
		related map[string]map[string]*unstructured.Unstructured
		same    bool
	}{
		{"a related object's opgate annotations and finalizers", nil, nil,
			related(thing("a", "ua", "x/v1", nil), thing("c", "uc", "x/v1", nil), thing("r", "ur", "x/v1", func(m map[string]any) {
				meta(m)["annotations"] = map[string]any{"opgate.dev/state.other": "{}"}
				meta(m)["finalizers"] = []any{"opgate.dev/other"}
			})), true},
		{"a child's opgate annotation", nil, func(m map[string]any) {
			meta(m)["annotations"] = map[string]any{"opgate.dev/state.other": "{}"}
		}, related(thing("a", "ua", "x/v1", nil), thing("c", "uc", "x/v1", nil), thing("r", "ur", "x/v1", nil)), true},
		{"a related object's own annotation", nil, nil,
			related(thing("a", "ua", "x/v1", nil), thing("c", "uc", "x/v1", nil), thing("r", "ur", "x/v1", func(m map[string]any) {
				meta(m)["annotations"] = map[string]any{"team": "x"}
			})), false},
		{"a related object's finalizer of someone else", nil, nil,
			related(thing("a", "ua", "x/v1", nil), thing("c", "uc", "x/v1", nil), thing("r", "ur", "x/v1", func(m map[string]any) {
				meta(m)["finalizers"] = []any{"opgate.dev/other", "example.com/keep"}
			})), false},
		{"a related object's status", nil, nil,
			related(thing("a", "ua", "x/v1", nil), thing("c", "uc", "x/v1", nil), thing("r", "ur", "x/v1", written)), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := syncDigest(thing("a", "ua", "x/v1", tt.parent), children{"x/v1/Thing": {"c": thing("c", "uc", "x/v1", tt.child)}}, tt.related)
			if (got == before) != tt.same {
				t.Errorf("digest the same = %v, want %v", got == before, tt.same)
			}
		})
	}

	// What the pass wrote is seen as written among the related objects:
	// the digest after the writes equals the next pass's over the same
	// objects, listed afresh.
	wrote := syncDigest(thing("a", "ua", "x/v1", written), children{"x/v1/Thing": {"c": thing("c", "uc", "x/v1", written)}},
		related(thing("a", "ua", "x/v1", nil), thing("c", "uc", "x/v1", nil)))
	next := syncDigest(thing("a", "ua", "x/v1", written), children{"x/v1/Thing": {"c": thing("c", "uc", "x/v1", written)}},
		related(thing("a", "ua", "x/v1", written), thing("c", "uc", "x/v1", written)))
	if wrote != next {
		t.Error("the digest after the writes differs from the next pass's: the related copies of what was written count as a change")
	}
	// Another version of the kind is not taken for the written object.
	stale := syncDigest(thing("a", "ua", "x/v1", written), nil, related(thing("a", "ua", "x/v2", nil)))
	fresh := syncDigest(thing("a", "ua", "x/v1", written), nil, related(thing("a", "ua", "x/v2", written)))
	if stale == fresh {
		t.Error("a related object of another version was replaced by the parent of this one")
	}
}
