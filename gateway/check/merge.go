package check

import (
	"encoding/json"
	"fmt"

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
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return decodeObject(raw)
}

// mergePatch applies a JSON merge patch (RFC 7386: null deletes, objects
// merge, anything else replaces) to target with the library the API server
// uses for merge patches, so the status checked here is the one the server
// will store. The result is normalized as normalizeJSON does; target and
// patch are not modified, and either may be nil.
func mergePatch(target, patch map[string]any) (map[string]any, error) {
	if patch == nil {
		return normalizeJSON(target)
	}
	if target == nil {
		target = map[string]any{}
	}
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
