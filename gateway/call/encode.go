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
	APIVersion     string                               `json:"apiVersion"`
	Kind           string                               `json:"kind"`
	UID            string                               `json:"uid"`
	Event          callbacks.Event                      `json:"event"`
	Operator       string                               `json:"operator"`
	Callback       string                               `json:"callback"`
	Attempt        int                                  `json:"attempt"`
	Deadline       time.Time                            `json:"deadline"`
	Object         any                                  `json:"object"`
	Old            any                                  `json:"old,omitempty"`
	Diff           []callbacks.DiffOp                   `json:"diff,omitempty"`
	OldUnavailable bool                                 `json:"oldUnavailable,omitempty"`
	Children       map[string]map[string]map[string]any `json:"children,omitempty"`
	Related        map[string]map[string]map[string]any `json:"related,omitempty"`
}

// encodeRequest encodes req as json.Marshal(req) does.
func encodeRequest(req *callbacks.Request) ([]byte, error) {
	return json.Marshal(&wireRequest{
		APIVersion: req.APIVersion, Kind: req.Kind, UID: req.UID, Event: req.Event,
		Operator: req.Operator, Callback: req.Callback, Attempt: req.Attempt, Deadline: req.Deadline,
		Object: objectMap(req.Object), Old: objectMap(req.Old),
		Diff: req.Diff, OldUnavailable: req.OldUnavailable,
		Children: objectMaps(req.Children), Related: objectMaps(req.Related),
	})
}

// objectMap is what encodes as u does: nil (omitted, or null) for a nil u,
// its map otherwise, which encodes as null when nil, as u does.
func objectMap(u *unstructured.Unstructured) any {
	if u == nil {
		return nil
	}
	return u.Object
}

// objectMaps keeps nil and empty apart, as omitempty does for the original.
func objectMaps(in map[string]map[string]*unstructured.Unstructured) map[string]map[string]map[string]any {
	if in == nil {
		return nil
	}
	out := make(map[string]map[string]map[string]any, len(in))
	for kind, byName := range in {
		if byName == nil {
			out[kind] = nil
			continue
		}
		m := make(map[string]map[string]any, len(byName))
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
