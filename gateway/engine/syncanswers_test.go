package engine

import (
	"maps"
	"slices"
	"testing"
)

// With several sync callbacks, a pass's desired children are what all of
// them answered; until the last of them answers a children key, nothing is.
func TestSyncAnswersAreTheDesiredSetOnlyOnceEverySyncCallbackAnswered(t *testing.T) {
	deploy := map[string]bool{"apps/v1/Deployment|web": true}
	config := map[string]bool{"v1/ConfigMap|cfg": true}
	type answer struct {
		id   string
		keys map[string]bool
	}
	tests := []struct {
		name     string
		required []string
		before   []answer // answered with a children key earlier in the pass
		id       string
		keys     map[string]bool
		want     []string // nil: prune nothing
	}{
		{"the only sync callback", []string{"sync"}, nil, "sync", deploy, []string{"apps/v1/Deployment|web"}},
		{"the only one answering children: []", []string{"sync"}, nil, "sync", map[string]bool{}, []string{}},
		{"the first of two", []string{"sync-deploy", "sync-config"}, nil, "sync-deploy", deploy, nil},
		{"the second of two", []string{"sync-deploy", "sync-config"}, []answer{{"sync-deploy", deploy}}, "sync-config", config,
			[]string{"apps/v1/Deployment|web", "v1/ConfigMap|cfg"}},
		{"the last of three, one missing", []string{"a", "b", "c"}, []answer{{"a", deploy}}, "c", config, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s syncAnswers
			for _, a := range tt.before {
				s.add(a.id, a.keys)
			}
			got := s.wanted(tt.id, tt.keys, tt.required)
			if tt.want == nil {
				if got != nil {
					t.Fatalf("wanted = %v, want nil: a sync callback has yet to answer", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("wanted = nil, want %v", tt.want)
			}
			if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, tt.want) {
				t.Errorf("wanted = %v, want %v", keys, tt.want)
			}
		})
	}
}
