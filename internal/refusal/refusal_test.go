package refusal

import (
	"testing"
	"time"
)

func TestPermanentFollowsTheCodeUnlessTheBodySays(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name string
		code int
		said Body
		want bool
	}{
		{"400 says this request can never succeed", 400, Body{}, true},
		{"422 too", 422, Body{}, true},
		{"a 422 whose body says temporary", 422, Body{Permanent: &no}, false},
		{"401 is cured by a rotated secret", 401, Body{}, false},
		{"404 by a handler's rollout", 404, Body{}, false},
		{"503", 503, Body{}, false},
		{"a 500 whose body says permanent", 500, Body{Permanent: &yes}, true},
		{"a redirect, whatever its body says", 307, Body{Permanent: &yes}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Permanent(tt.code, tt.said); got != tt.want {
				t.Errorf("Permanent(%d, %+v) = %v, want %v", tt.code, tt.said, got, tt.want)
			}
		})
	}
}

func TestDecodeReadsTheErrorObjectLeniently(t *testing.T) {
	tests := []struct {
		name, body     string
		wantPermanent  *bool
		wantRetryAfter time.Duration
	}{
		{"the contract's error object", `{"error":{"message":"m","permanent":true,"retryAfter":"7s"}}`, ptr(true), 7 * time.Second},
		{"unknown fields around it", `{"error":{"permanent":false,"code":9},"trace":"x"}`, ptr(false), 0},
		{"a page that is not JSON", `<html>502</html>`, nil, 0},
		{"JSON without error", `{"message":"m"}`, nil, 0},
		{"a negative retryAfter leaves the delay to the backoff", `{"error":{"retryAfter":"-1s"}}`, nil, 0},
		{"a retryAfter that is not a duration", `{"error":{"retryAfter":"soon"}}`, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decode([]byte(tt.body))
			if (got.Permanent == nil) != (tt.wantPermanent == nil) || (got.Permanent != nil && *got.Permanent != *tt.wantPermanent) {
				t.Errorf("Permanent = %v, want %v", got.Permanent, tt.wantPermanent)
			}
			if d := got.RetryAfterDuration(); d != tt.wantRetryAfter {
				t.Errorf("RetryAfterDuration() = %s, want %s", d, tt.wantRetryAfter)
			}
		})
	}
}

func ptr(b bool) *bool { return &b }
