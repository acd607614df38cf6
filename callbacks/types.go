// Package callbacks is opgate's handler contract (docs/contract.md) as Go types
// and JSON Schemas, plus what Go handler authors need: a mux by event and
// callback id, Standard Webhooks signature verification, and test helpers
// (package callbackstest).
package callbacks

import (
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// APIVersion and Kind of every CallbackRequest.
const (
	APIVersion  = "opgate.dev/v1alpha1"
	RequestKind = "CallbackRequest"
)

// Event is the lifecycle event a request is about.
type Event string

// The events of docs/contract.md ("Events and when they fire").
const (
	EventCreate Event = "create"
	EventUpdate Event = "update"
	EventDelete Event = "delete"
	EventResume Event = "resume"
	EventTimer  Event = "timer"
	EventSync   Event = "sync"
)

// Request is what the gateway POSTs to a handler (docs/contract.md, "Request"); its schema is
// schema/request.json.
type Request struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// UID identifies the delivery and stays the same across its retries, so
	// a handler can deduplicate; it is also sent as Idempotency-Key and
	// webhook-id.
	UID      string `json:"uid"`
	Event    Event  `json:"event"`
	Operator string `json:"operator"`
	Callback string `json:"callback"`
	// Attempt counts deliveries of this UID, from 1.
	Attempt int `json:"attempt"`
	// Deadline is when the gateway stops waiting for the answer.
	Deadline time.Time `json:"deadline"`

	Object *unstructured.Unstructured `json:"object"`
	Old    *unstructured.Unstructured `json:"old,omitempty"`
	Diff   []DiffOp                   `json:"diff,omitempty"`
	// OldUnavailable is set on an update that carries no Old and Diff
	// because the gateway did not keep the last handled object (too large
	// for the object's annotations): treat the update as "something in the
	// essence changed" and reconcile from Object alone.
	OldUnavailable bool `json:"oldUnavailable,omitempty"`

	// Children and Related are keyed by "apiVersion/Kind" (e.g.
	// "apps/v1/Deployment"), then by object name ("namespace/name" when the
	// object is in another namespace than the parent).
	Children map[string]map[string]*unstructured.Unstructured `json:"children,omitempty"`
	Related  map[string]map[string]*unstructured.Unstructured `json:"related,omitempty"`
}

// DiffOp is one change between the last handled object and the current one.
type DiffOp struct {
	Op   string          `json:"op"` // add | change | remove
	Path string          `json:"path"`
	Old  json.RawMessage `json:"old,omitempty"`
	New  json.RawMessage `json:"new,omitempty"`
}

// Diff operations.
const (
	OpAdd    = "add"
	OpChange = "change"
	OpRemove = "remove"
)

// Response is what a handler answers (docs/contract.md, "Response"); its schema is
// schema/response.json. Every field is optional.
type Response struct {
	// Status is a JSON merge patch on the parent's .status.
	Status map[string]any `json:"status,omitempty"`
	// Children is a pointer to a slice so that an absent key (nil: prune
	// nothing) differs from an empty list (prune all owned children).
	Children *[]*unstructured.Unstructured `json:"children,omitempty"`
	// RequeueAfter is a Go duration ("30s") after which the same callback
	// is called again; see RequeueAfterDuration.
	RequeueAfter string      `json:"requeueAfter,omitempty"`
	Events       []KubeEvent `json:"events,omitempty"`
	// Error reports a failure. Of the rest of such a response the gateway
	// applies Status and records Events; Children, RequeueAfter and
	// Finalized are ignored.
	Error *Error `json:"error,omitempty"`
	// Finalized matters to delete callbacks only: nil or true releases the
	// finalizer, false keeps it and calls again after RequeueAfter.
	Finalized *bool `json:"finalized,omitempty"`
}

// RequeueAfterDuration parses RequeueAfter; zero when it is empty.
func (r *Response) RequeueAfterDuration() (time.Duration, error) {
	return parseDuration(r.RequeueAfter)
}

// Kubernetes Event types a KubeEvent may have.
const (
	EventTypeNormal  = "Normal"
	EventTypeWarning = "Warning"
)

// KubeEvent is a Kubernetes Event the gateway records on the parent.
type KubeEvent struct {
	// Type is Normal or Warning; empty (and then omitted, which the schema
	// allows while it refuses "") means Normal.
	Type    string `json:"type,omitempty"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Error is a handler-reported failure (docs/contract.md, "Errors and retries").
type Error struct {
	Message string `json:"message"`
	// Permanent stops retries until the object's essence changes; otherwise
	// the gateway retries with backoff.
	Permanent bool `json:"permanent,omitempty"`
	// RetryAfter is a Go duration that replaces the backoff delay; see
	// RetryAfterDuration.
	RetryAfter string `json:"retryAfter,omitempty"`
}

// RetryAfterDuration parses RetryAfter; zero when it is empty.
func (e *Error) RetryAfterDuration() (time.Duration, error) {
	return parseDuration(e.RetryAfter)
}

// parseDuration reads a contract duration: a non-negative Go duration, or
// the empty string for none.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("not a Go duration: %w", err)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}
