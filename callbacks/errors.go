package callbacks

import (
	"errors"
	"time"
)

// HandlerError is an error a handler returns to choose how the gateway
// retries (docs/contract.md, "Errors and retries"), the Go equivalent of Kopf's TemporaryError and
// PermanentError. Build one with Temporary or Permanent; it may be wrapped
// with %w, and the Mux still finds it.
type HandlerError struct {
	Message string
	// Permanent stops retries until the object's essence changes.
	Permanent bool
	// RetryAfter replaces the gateway's backoff delay when positive;
	// temporary errors only.
	RetryAfter time.Duration
}

func (e *HandlerError) Error() string { return e.Message }

// Temporary reports a failure the gateway retries: after retryAfter when it
// is positive, otherwise with its exponential backoff.
func Temporary(msg string, retryAfter time.Duration) error {
	return &HandlerError{Message: msg, RetryAfter: retryAfter}
}

// Permanent reports a failure that retrying cannot fix: the gateway stops
// calling until the object's essence changes and records a Warning Event.
func Permanent(msg string) error {
	return &HandlerError{Message: msg, Permanent: true}
}

// fallbackErrorMessage stands in for an empty error message, which the
// response schema refuses.
const fallbackErrorMessage = "handler failed without a message"

// ErrorFor turns an error into the response's error field. The message is
// the whole chain's (so wrapping context is kept); the class comes from a
// *HandlerError in the chain, and any other error is temporary.
func ErrorFor(err error) *Error {
	if err == nil {
		return nil
	}
	out := &Error{Message: err.Error()}
	if out.Message == "" {
		out.Message = fallbackErrorMessage
	}
	var he *HandlerError
	if errors.As(err, &he) {
		out.Permanent = he.Permanent
		if !he.Permanent && he.RetryAfter > 0 {
			out.RetryAfter = he.RetryAfter.String()
		}
	}
	return out
}
