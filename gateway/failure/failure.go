// Package failure classifies errors once, at the edge where they arise, as
// temporary (retry with backoff) or permanent (stop until the object's
// essence changes). Only the worker decides what to do with the class.
package failure

import (
	"errors"
	"fmt"
	"time"
)

// Class of a failure.
type Class int

// Failure classes of docs/contract.md ("Errors and retries").
const (
	Temporary Class = iota
	Permanent
)

func (c Class) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "temporary"
}

// Error is a classified failure. Reason is a CamelCase word fit for a
// Kubernetes Event reason (HandlerError, InvalidResponse, ChildRefused, ...).
type Error struct {
	Class      Class
	Reason     string
	RetryAfter time.Duration // 0: use the backoff
	Err        error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Temporaryf returns a temporary failure.
func Temporaryf(reason, format string, args ...any) *Error {
	return &Error{Class: Temporary, Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Permanentf returns a permanent failure.
func Permanentf(reason, format string, args ...any) *Error {
	return &Error{Class: Permanent, Reason: reason, Err: fmt.Errorf(format, args...)}
}

// WithRetryAfter sets the delay the peer asked for.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	e.RetryAfter = d
	return e
}

// As returns the classified failure in err's chain; an unclassified error is
// temporary with reason "Error", since retrying is the safe default.
func As(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return &Error{Class: Temporary, Reason: "Error", Err: err}
}
