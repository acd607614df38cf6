package essence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/opgate/opgate/callbacks"
)

// Diff is the field diff of two essences (docs/contract.md), the "diff" of an
// update request and the input of when.fields filters. Like Kopf's diff it
// recurses into objects and compares lists as whole values, so a list
// change is one "change" op at the list's path. Paths are dotted
// ("spec.size", "metadata.labels.tier"); the ops are sorted by path so the
// same two essences always give the same request body.
//
// A key holding null counts as absent, as in a merge patch: null → 3 is an
// add, 3 → null a remove. An object that appears or disappears as a whole is
// one add or remove at its own path, not one per leaf.
func Diff(before, after map[string]any) []callbacks.DiffOp {
	var ops []callbacks.DiffOp
	diffObjects("", before, after, &ops)
	sort.Slice(ops, func(i, j int) bool { return ops[i].Path < ops[j].Path })
	return ops
}

func diffObjects(prefix string, before, after map[string]any, ops *[]callbacks.DiffOp) {
	keys := make(map[string]struct{}, len(before)+len(after))
	for k := range before {
		keys[k] = struct{}{}
	}
	for k := range after {
		keys[k] = struct{}{}
	}
	for k := range keys {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		ov, nv := before[k], after[k]
		switch {
		case ov == nil && nv == nil:
			// absent or null on both sides: nothing changed
		case ov == nil:
			*ops = append(*ops, callbacks.DiffOp{Op: callbacks.OpAdd, Path: path, New: encode(nv)})
		case nv == nil:
			*ops = append(*ops, callbacks.DiffOp{Op: callbacks.OpRemove, Path: path, Old: encode(ov)})
		default:
			om, oldIsObject := ov.(map[string]any)
			nm, newIsObject := nv.(map[string]any)
			if oldIsObject && newIsObject {
				diffObjects(path, om, nm, ops)
				continue
			}
			if !equalValues(ov, nv) {
				*ops = append(*ops, callbacks.DiffOp{Op: callbacks.OpChange, Path: path, Old: encode(ov), New: encode(nv)})
			}
		}
	}
}

// equalValues compares two leaf values by their JSON encoding, so that the
// int64 3 of an object read from the API and the float64 3 of a decoded
// stored essence are equal, as they are on the wire.
func equalValues(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return reflect.DeepEqual(a, b)
	}
	return bytes.Equal(ja, jb)
}

// encode renders a value for a DiffOp. Essences come from JSON, so encoding
// cannot fail in practice; should it (a NaN float), the value is still shown
// as a JSON string rather than dropped.
func encode(v any) json.RawMessage {
	raw, err := json.Marshal(v)
	if err != nil {
		raw, _ = json.Marshal(fmt.Sprint(v))
	}
	return raw
}

// Changed says whether the diff touches one of the filter fields (Kopf's
// field=): a path matches a field when it is the field, lies under it
// ("spec" matches a change at "spec.size") or lies over it ("spec.size"
// matches a change that replaced all of "spec"). No fields means no filter:
// any change counts.
func Changed(diff []callbacks.DiffOp, fields []string) bool {
	if len(fields) == 0 {
		return len(diff) > 0
	}
	for _, op := range diff {
		for _, f := range fields {
			if overlaps(op.Path, f) {
				return true
			}
		}
	}
	return false
}

// overlaps says whether one dotted path equals or contains the other,
// comparing whole segments so that "spec.size" does not match "spec.sizeLimit".
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".")
}
