package check

import (
	"encoding/json"
	"fmt"

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
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	var out map[string]any
	if err := utiljson.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return out, nil
}

// mergePatch applies an RFC 7386 JSON merge patch to target and returns the
// result: a null value deletes the key, an object value is merged
// recursively, and anything else (lists included) replaces the old value.
// target is modified and may be nil; patch must not be used afterwards, its
// values are moved into the result.
func mergePatch(target, patch map[string]any) map[string]any {
	if target == nil {
		target = map[string]any{}
	}
	for k, pv := range patch {
		if pv == nil {
			delete(target, k)
			continue
		}
		if pm, ok := pv.(map[string]any); ok {
			// A patch object merges into an existing object; anything else
			// is replaced by the patch object with its nulls removed.
			tm, _ := target[k].(map[string]any)
			target[k] = mergePatch(tm, pm)
			continue
		}
		target[k] = pv
	}
	return target
}
