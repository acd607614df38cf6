package callbacks

import (
	"maps"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Status starts a response that merge-patches the parent's .status with
// status.
func Status(status map[string]any) *Response {
	return (&Response{}).WithStatus(status)
}

// Children starts a response with the given children. The list is present
// even when empty, so in a sync response it is this callback's desired
// set: with one sync callback, Children() with no arguments deletes every
// owned child; with several, an owned child is deleted once every one of
// them answered without it in one pass, and Children() from one that
// manages no children lets the others prune (docs/contract.md, "Response").
func Children(children ...*unstructured.Unstructured) *Response {
	return (&Response{}).WithChildren(children...)
}

// Finalized starts a delete response: true releases the finalizer, false
// keeps it and asks to be called again (after RequeueAfter when set).
func Finalized(done bool) *Response {
	return &Response{Finalized: &done}
}

// The With methods add to a response and return it, so that they chain; on
// a nil response they start a new one.

// WithStatus adds status's top-level fields to the status patch, replacing
// fields of the same name.
func (r *Response) WithStatus(status map[string]any) *Response {
	r = orNew(r)
	if r.Status == nil {
		r.Status = make(map[string]any, len(status))
	}
	maps.Copy(r.Status, status)
	return r
}

// WithChildren appends children, making the children list present.
func (r *Response) WithChildren(children ...*unstructured.Unstructured) *Response {
	r = orNew(r)
	if r.Children == nil {
		list := make([]*unstructured.Unstructured, 0, len(children))
		r.Children = &list
	}
	*r.Children = append(*r.Children, children...)
	return r
}

// WithEvent adds a Kubernetes Event for the gateway to record on the
// parent; typ is EventTypeNormal or EventTypeWarning, reason a CamelCase
// word.
func (r *Response) WithEvent(typ, reason, message string) *Response {
	r = orNew(r)
	r.Events = append(r.Events, KubeEvent{Type: typ, Reason: reason, Message: message})
	return r
}

// WithRequeueAfter asks for the same callback again after d.
func (r *Response) WithRequeueAfter(d time.Duration) *Response {
	r = orNew(r)
	r.RequeueAfter = ""
	if d > 0 {
		r.RequeueAfter = d.String()
	}
	return r
}

func orNew(r *Response) *Response {
	if r == nil {
		return &Response{}
	}
	return r
}
