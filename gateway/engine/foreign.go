package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/check"
)

// A sync's digest is taken after the pass's writes, over what they
// answered, so that the gateway's own writes do not call the handler
// again. An answer may also carry what someone else changed while the
// handler worked: a child annotated, the parent's spec edited (its status
// write reads the object again after a conflict). Taken into the digest,
// such a change would count as seen by a handler that never saw it, until
// the resync period. So each write of a pass of a sync operator is
// compared with the object as the handler saw it, outside what the write
// set; where they differ, the pass keeps the digest of what the handler
// saw (pass.foreign), and the next event calls sync again: one call more
// at most, never a change lost.

// changedBeyond reports whether after, a write's answer, differs from
// before, the object as the pass held it, outside the fields wrote sets
// and what every write changes. own: the parent (see digestView).
func changedBeyond(before, after *unstructured.Unstructured, wrote map[string]any, own bool) bool {
	return !check.EqualJSON(outside(digestView(before, own), wrote), outside(digestView(after, own), wrote))
}

// outside is view less every field wrote sets (a map in both is followed,
// and goes when nothing else is left in it; anything else goes whole) and
// less metadata.generation, which a write of the spec moves.
func outside(view, wrote map[string]any) map[string]any {
	out := without(view, wrote)
	if meta, ok := out["metadata"].(map[string]any); ok {
		if _, ok := meta["generation"]; ok {
			out["metadata"] = without(meta, map[string]any{"generation": nil})
		}
	}
	return out
}

func without(obj, wrote map[string]any) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		w, set := wrote[k]
		if !set {
			out[k] = v
			continue
		}
		vm, ok := v.(map[string]any)
		wm, ok2 := w.(map[string]any)
		if !ok || !ok2 {
			continue
		}
		// A map left empty is left out: a status the write made where
		// there was none is all the write's own.
		if rest := without(vm, wm); len(rest) > 0 {
			out[k] = rest
		}
	}
	return out
}
