package engine

import "encoding/json"

// normalize round-trips a value through JSON so int64 and float64 forms of
// the same number compare equal.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}
