// Package callbacks is opgate's handler contract (DESIGN §3–§5) as Go types
// and JSON Schemas, plus what Go handler authors need: a mux by event and
// callback id, Standard Webhooks signature verification, and test helpers
// (package callbackstest).
package callbacks

import (
	"encoding/json"
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

// The events of DESIGN §2.
const (
	EventCreate Event = "create"
	EventUpdate Event = "update"
	EventDelete Event = "delete"
	EventResume Event = "resume"
	EventTimer  Event = "timer"
	EventSync   Event = "sync"
)

// Request is what the gateway POSTs to a handler.
type Request struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	UID        string    `json:"uid"`
	Event      Event     `json:"event"`
	Operator   string    `json:"operator"`
	Callback   string    `json:"callback"`
	Attempt    int       `json:"attempt"`
	Deadline   time.Time `json:"deadline"`

	Object *unstructured.Unstructured `json:"object"`
	Old    *unstructured.Unstructured `json:"old,omitempty"`
	Diff   []DiffOp                   `json:"diff,omitempty"`

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

// Response is what a handler answers. Every field is optional.
type Response struct {
	Status map[string]any `json:"status,omitempty"`
	// Children is a pointer to a slice so that an absent key (nil: prune
	// nothing) differs from an empty list (prune all owned children).
	Children     *[]*unstructured.Unstructured `json:"children,omitempty"`
	RequeueAfter string                        `json:"requeueAfter,omitempty"`
	Events       []KubeEvent                   `json:"events,omitempty"`
	Error        *Error                        `json:"error,omitempty"`
	Finalized    *bool                         `json:"finalized,omitempty"`
}

// KubeEvent is a Kubernetes Event the gateway records on the parent.
type KubeEvent struct {
	Type    string `json:"type"` // Normal | Warning
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Error is a handler-reported failure.
type Error struct {
	Message    string `json:"message"`
	Permanent  bool   `json:"permanent,omitempty"`
	RetryAfter string `json:"retryAfter,omitempty"`
}
