// Package refusal reads a handler's non-2xx answer as the gateway
// classifies it (docs/contract.md, "Errors and retries"): gateway/call acts
// on the class, callbacks/callbackstest tells a handler's tests what the
// gateway would do. It is its own package so that both share the rule
// while callbacks/... stays free of the gateway's packages.
package refusal

import (
	"encoding/json"
	"net/http"
	"time"
)

// Body is the part of a refusal's body the classification reads: the
// contract's error object, decoded leniently, since a refusal is often
// written by a framework or a proxy rather than by the handler.
type Body struct {
	Permanent  *bool  `json:"permanent"`
	RetryAfter string `json:"retryAfter"`
}

// Decode reads the error object of a refusal's body; a body that is not
// JSON or has none says nothing.
func Decode(body []byte) Body {
	var doc struct {
		Error *Body `json:"error"`
	}
	if json.Unmarshal(body, &doc) != nil || doc.Error == nil {
		return Body{}
	}
	return *doc.Error
}

// Permanent says whether a non-2xx answer is a permanent failure: never a
// redirect (a URL fix cures it), else what the body's error says, else
// only 400 and 422, the codes that say this request can never succeed.
// Any other refusal may be cured by configuration rather than by a new
// object (a 401 while a Secret rotates, a 404 while a handler rolls out),
// so it is retried like a 5xx.
func Permanent(code int, said Body) bool {
	switch {
	case code >= 300 && code <= 399:
		return false
	case said.Permanent != nil:
		return *said.Permanent
	}
	return code == http.StatusBadRequest || code == http.StatusUnprocessableEntity
}

// RetryAfterDuration is the body's retryAfter; zero when absent, invalid
// or negative, which leaves the delay to the backoff.
func (b Body) RetryAfterDuration() time.Duration {
	d, err := time.ParseDuration(b.RetryAfter)
	if err != nil || d < 0 {
		return 0
	}
	return d
}
