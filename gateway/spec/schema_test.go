package spec

import (
	"sort"
	"strings"
	"testing"
)

// TestEveryPatternOfTheSchemaIsExplained keeps patternMeaning in step with
// the schema: a new pattern without words would show users a raw regexp.
func TestEveryPatternOfTheSchemaIsExplained(t *testing.T) {
	raw, err := rawSchema()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	var walk func(v any, ptr string)
	walk = func(v any, ptr string) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["pattern"].(string); ok {
				found = append(found, ptr)
			}
			for k, e := range x {
				walk(e, joinPointer(ptr, k))
			}
		case []any:
			for _, e := range x {
				walk(e, ptr+"/*")
			}
		}
	}
	walk(raw, "")
	sort.Strings(found)
	for _, p := range found {
		if _, ok := patternMeaning[p]; !ok {
			t.Errorf("pattern at %s has no entry in patternMeaning", p)
		}
	}
	if len(found) != len(patternMeaning) {
		t.Errorf("schema has %d patterns, patternMeaning %d entries: remove stale ones", len(found), len(patternMeaning))
	}
}

func TestSchemaAcceptsGoDurations(t *testing.T) {
	tests := []struct {
		value string
		valid bool
	}{
		{"10s", true}, {"1h30m", true}, {"1.5s", true}, {"500ms", true}, {"3µs", true}, {"0s", true},
		{"1d", false}, {"10", false}, {"-1s", false}, {"", false}, {"1 s", false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			// initialDelay of a timer is the one duration that may be 0.
			doc := strings.Replace(minimal, "events: [create]", "events: [timer]\n      interval: 1h\n      initialDelay: \""+tt.value+"\"", 1)
			_, err := Parse([]byte(doc), "d.yaml")
			if (err == nil) != tt.valid {
				t.Errorf("initialDelay %q: error %v, want valid %v", tt.value, err, tt.valid)
			}
		})
	}
}
