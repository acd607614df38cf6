package call

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"seconds with spaces", " 5 ", 5 * time.Second},
		{"zero seconds", "0", 0},
		{"negative seconds", "-5", 0},
		{"seconds beyond a Duration are capped, not wrapped", "99999999999999999", time.Duration(1<<63-1) / time.Second * time.Second},
		{"HTTP-date ahead", now.Add(time.Hour).Format(http.TimeFormat), time.Hour},
		{"RFC 850 date ahead", now.Add(time.Minute).Format(time.RFC850), time.Minute},
		{"HTTP-date past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"garbage", "soon", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.value, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.value, got, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantLen int // in bytes, the mark included
		cut     bool
	}{
		{"short body is kept", "hello", 5, false},
		{"body of exactly the limit is kept", strings.Repeat("a", snippetBytes), snippetBytes, false},
		{"long body is cut and marked", strings.Repeat("a", 3*snippetBytes), snippetBytes + len("…"), true},
		{"a cut never splits a rune", strings.Repeat("a", snippetBytes-1) + "€€", snippetBytes - 1 + len("…"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate([]byte(tt.in))
			if len(got) != tt.wantLen || strings.HasSuffix(got, "…") != tt.cut || !utf8.ValidString(got) {
				t.Errorf("truncate = %d bytes %q…, want %d bytes, cut %v, valid UTF-8", len(got), got[:min(len(got), 20)], tt.wantLen, tt.cut)
			}
		})
	}
}

func TestSafeURLHidesSecrets(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://h/p?token=x", "http://h/p"},
		{"http://user:pw@h/p#frag", "http://…@h/p"},
		{"user:pw@h", "…@h"},
	}
	for _, tt := range tests {
		if got := safeURL(tt.in); got != tt.want {
			t.Errorf("safeURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
