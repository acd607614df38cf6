package call

import (
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
)

// wireRequest is callbacks.Request as it is sent, with the objects as
// their maps. Encoding an *unstructured.Unstructured goes through its
// MarshalJSON, which encodes the object into a buffer of its own that
// encoding/json then scans and copies again; the maps encode to the same
// bytes once. Its fields and tags are callbacks.Request's, in the same
// order (a test holds them together).
type wireRequest struct {
	APIVersion     string             `json:"apiVersion"`
	Kind           string             `json:"kind"`
	UID            string             `json:"uid"`
	Event          callbacks.Event    `json:"event"`
	Operator       string             `json:"operator"`
	Callback       string             `json:"callback"`
	Attempt        int                `json:"attempt"`
	Deadline       time.Time          `json:"deadline"`
	Object         any                `json:"object"`
	Old            any                `json:"old,omitempty"`
	Diff           []callbacks.DiffOp `json:"diff,omitempty"`
	OldUnavailable bool               `json:"oldUnavailable,omitempty"`
	Children       Children           `json:"children,omitempty"`
	Related        Children           `json:"related,omitempty"`
}

// Children is a request's children as the caller holds them, by kind key
// and name as in callbacks.Request: each an object's map or, cached as the
// API server sent it, its JSON (a json.RawMessage), which is sent as it
// is rather than decoded and encoded again; nil encodes as null.
type Children map[string]map[string]any

// encodeRequest encodes req as json.Marshal(req) does, with children in
// place of req.Children when it is not nil.
func encodeRequest(req *callbacks.Request, children Children) ([]byte, error) {
	if children == nil {
		children = childrenOf(req.Children)
	}
	return json.Marshal(&wireRequest{
		APIVersion: req.APIVersion, Kind: req.Kind, UID: req.UID, Event: req.Event,
		Operator: req.Operator, Callback: req.Callback, Attempt: req.Attempt, Deadline: req.Deadline,
		Object: objectMap(req.Object), Old: objectMap(req.Old),
		Diff: req.Diff, OldUnavailable: req.OldUnavailable,
		Children: children, Related: childrenOf(req.Related),
	})
}

// childrenOf is in (children or related objects) as Children, nil and
// empty kept apart as omitempty does for the original.
func childrenOf(in map[string]map[string]*unstructured.Unstructured) Children {
	if in == nil {
		return nil
	}
	out := make(Children, len(in))
	for kind, byName := range in {
		if byName == nil {
			out[kind] = nil
			continue
		}
		m := make(map[string]any, len(byName))
		for name, u := range byName {
			if u == nil {
				m[name] = nil
				continue
			}
			m[name] = u.Object
		}
		out[kind] = m
	}
	return out
}

// objectMap is what encodes as u does: nil (omitted, or null) for a nil u,
// its map otherwise, which encodes as null when nil, as u does.
func objectMap(u *unstructured.Unstructured) any {
	if u == nil {
		return nil
	}
	return u.Object
}
