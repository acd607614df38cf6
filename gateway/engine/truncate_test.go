package engine

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Event and condition messages are cut to a length in bytes: the cut must
// not split a character, or the message ends in invalid UTF-8.
func TestTruncateCutsMessagesAtACharacterBoundary(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short enough", "héllo", 6, "héllo"},
		{"ascii", "hello world", 5, "hello…"},
		{"inside a two-byte character", "aé", 2, "a…"},
		{"inside a three-byte character", "ab€cd", 3, "ab…"},
		{"inside a four-byte character", "a😀b", 4, "a…"},
		{"at a character's end", "é€b", 5, "é€…"},
		{"inside the first character", "€€", 1, "…"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate(tt.s, tt.n)
			if !utf8.ValidString(got) {
				t.Fatalf("truncate(%q, %d) = %q: invalid UTF-8", tt.s, tt.n, got)
			}
			if got != tt.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
			if cut := strings.TrimSuffix(got, "…"); len(cut) > tt.n {
				t.Errorf("truncate(%q, %d) kept %d bytes, more than %d", tt.s, tt.n, len(cut), tt.n)
			}
		})
	}
}
