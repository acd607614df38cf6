package check

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	jsonpatch "github.com/evanphx/json-patch/v5"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// normalizeJSON returns a deep copy of m with the value types the API
// server's decoder produces: integral numbers as int64, others as float64.
// Handler bodies decode to float64 and Go callers may pass int; the server's
// pruning and validation code expect int64 for integer fields, so without
// this "3" and "3.0" would be judged differently from the server. A nil map
// stays nil.
func normalizeJSON(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	if c, ok := normalizedCopy(m); ok {
		return c.(map[string]any), nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return decodeObject(raw)
}

// mergePatch applies a JSON merge patch (RFC 7386: null deletes, objects
// merge, anything else replaces) to target as the library the API server
// uses for merge patches (evanphx/json-patch) does, so the status checked
// here is the one the server will store. The result is normalized as
// normalizeJSON does; target and patch are not modified, and either may be
// nil.
//
// It merges the maps directly; only values of other types than a decoder
// produces (a []string from a Go caller, say) go through the library on
// their JSON encoding, which the direct merge equals (see its tests).
func mergePatch(target, patch map[string]any) (map[string]any, error) {
	if patch == nil {
		return normalizeJSON(target)
	}
	if target == nil {
		target = map[string]any{}
	}
	doc, ok := normalizedCopy(target)
	if ok {
		var p any
		if p, ok = normalizedCopy(patch); ok {
			merged := doc.(map[string]any)
			mergeInto(merged, p.(map[string]any))
			return merged, nil
		}
	}
	return mergePatchJSON(target, patch)
}

// mergeInto merges patch into doc as the library's merge does; both are
// the caller's own copies, and patch's values end up in doc.
func mergeInto(doc, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(doc, k)
			continue
		}
		cur, found := doc[k]
		curObj, curIsObj := cur.(map[string]any)
		patchObj, patchIsObj := v.(map[string]any)
		switch {
		case !found || cur == nil || !curIsObj:
			// The library prunes the nulls of a value that replaces
			// another or nothing...
			pruneNulls(v)
			doc[k] = v
		case !patchIsObj:
			doc[k] = v // ...but not of a non-object replacing an object.
		default:
			mergeInto(curObj, patchObj)
		}
	}
}

// pruneNulls drops null members of objects at any depth, also of objects
// in lists, keeping null list elements, as the library does.
func pruneNulls(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
			} else {
				pruneNulls(e)
			}
		}
	case []any:
		for _, e := range v {
			pruneNulls(e)
		}
	}
}

// normalizedCopy deep-copies v with the types a JSON round trip through
// the API server's decoder gives: int64 for a number json.Marshal writes
// as an integer that fits, float64 for the rest, nil for nil maps and
// lists. It says false for anything else (other types, invalid UTF-8,
// NaN), which the round trip itself must judge.
func normalizedCopy(v any) (any, bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case string:
		return v, utf8.ValidString(v)
	case bool, int64:
		return v, true
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case float64:
		return normalFloat(v)
	case map[string]any:
		if v == nil {
			return nil, true
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			c, ok := normalizedCopy(e)
			if !ok || !utf8.ValidString(k) {
				return nil, false
			}
			out[k] = c
		}
		return out, true
	case []any:
		if v == nil {
			return nil, true
		}
		out := make([]any, len(v))
		for i, e := range v {
			c, ok := normalizedCopy(e)
			if !ok {
				return nil, false
			}
			out[i] = c
		}
		return out, true
	}
	return nil, false
}

// normalFloat is f after json.Marshal and the API server's decoder: an
// integer below 1e21 is written without exponent, as its shortest decimal
// padded with zeros (exact up to 2^53), and decodes as int64 when that
// number fits one.
func normalFloat(f float64) (any, bool) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return nil, false
	case f != math.Trunc(f) || math.Abs(f) >= 1e21:
		return f, true
	case math.Abs(f) <= 1<<53:
		return int64(f), true
	}
	if i, err := strconv.ParseInt(strconv.FormatFloat(f, 'f', -1, 64), 10, 64); err == nil {
		return i, true
	}
	return f, true
}

// mergePatchJSON is mergePatch on the values' JSON encodings, through the
// library itself.
func mergePatchJSON(target, patch map[string]any) (map[string]any, error) {
	doc, err := json.Marshal(target)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	p, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	merged, err := jsonpatch.MergePatch(doc, p)
	if err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return decodeObject(merged)
}

func decodeObject(raw []byte) (map[string]any, error) {
	var out map[string]any
	if err := utiljson.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return out, nil
}
