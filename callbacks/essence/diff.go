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
// update request (when.fields filters compare the essences themselves:
// FieldsChanged). Like Kopf's diff it
// recurses into objects and compares lists as whole values, so a list
// change is one "change" op at the list's path. Paths are dotted
// ("spec.size", "metadata.labels.tier"), each key written as it is, dots
// included ("metadata.labels.app.kubernetes.io/name"); the ops are sorted
// by path so the same two essences always give the same request body.
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

// FieldsChanged says whether the value at one of the filter fields
// (when.fields, Kopf's field=) differs between two essences. No fields
// means no filter: any change counts.
//
// It compares values, not the diff's paths, which cannot tell a key
// holding dots from nested keys: a change of the label
// app.kubernetes.io/name is at metadata.labels.app.kubernetes.io/name, a
// path under metadata.labels.app as strings go. A field names each place
// its dotted path spells, a key with dots taken whole: the field
// metadata.labels.app.kubernetes.io/name is that label, and
// metadata.labels.app is the label app alone. An object that appears or
// goes whole (metadata, with the first label added or the last removed)
// fires only the fields under it whose value it changed. As Diff compares
// lists whole, a field inside a list compares the list; a scalar holds no
// fields.
func FieldsChanged(before, after map[string]any, fields []string) bool {
	if len(fields) == 0 {
		return !sameValue(before, after)
	}
	for _, f := range fields {
		if fieldChanged(before, after, f) {
			return true
		}
	}
	return false
}

// fieldChanged compares what path names under two values of one place.
func fieldChanged(before, after any, path string) bool {
	_, beforeIsList := before.([]any)
	_, afterIsList := after.([]any)
	if beforeIsList || afterIsList {
		return !sameValue(before, after)
	}
	// Absent, null and scalars hold no keys: the lookups below find nothing.
	bm, _ := before.(map[string]any)
	am, _ := after.(map[string]any)
	// The key the path starts with is all of it, or any part up to a dot.
	for i := 0; ; {
		dot := strings.IndexByte(path[i:], '.')
		if dot < 0 {
			return !sameValue(bm[path], am[path])
		}
		key, rest := path[:i+dot], path[i+dot+1:]
		if bv, av := bm[key], am[key]; (bv != nil || av != nil) && fieldChanged(bv, av, rest) {
			return true
		}
		i += dot + 1
	}
}

// sameValue says whether two values are equal as Diff compares them:
// objects key by key with null as absent, everything else as JSON.
func sameValue(a, b any) bool {
	am, aIsObject := a.(map[string]any)
	bm, bIsObject := b.(map[string]any)
	if !aIsObject || !bIsObject {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return equalValues(a, b)
	}
	for k, v := range am {
		if !sameValue(v, bm[k]) {
			return false
		}
	}
	for k, v := range bm {
		if _, seen := am[k]; !seen && v != nil {
			return false
		}
	}
	return true
}

// Changed says whether the diff touches one of the filter fields: a path
// matches a field when it is the field, lies under it ("spec" matches a
// change at "spec.size") or lies over it ("spec.size" matches a change that
// replaced all of "spec"). No fields means no filter: any change counts.
//
// Deprecated: a diff path cannot tell a key holding dots from nested keys,
// so Changed also fires a field metadata.labels.app on a change of the
// label app.kubernetes.io/name, and every field under an object that
// appeared or went whole. It never misses a change; FieldsChanged is
// exact, and is what the gateway filters with.
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
