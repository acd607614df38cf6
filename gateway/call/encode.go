package call

import (
	"encoding/json"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/internal/jsonenc"
)

// Children is a request's children as the caller holds them, by kind key
// and name as in callbacks.Request: each an object's map or, cached as the
// API server sent it, its JSON (a json.RawMessage), which is sent as it
// is rather than decoded and encoded again; nil encodes as null.
type Children map[string]map[string]any

// encodeRequest encodes req as json.Marshal(req) does, byte for byte, with
// children in place of req.Children when it is not nil. It is written out
// field by field: encoding/json would reach the objects' maps through
// reflection, and each *unstructured.Unstructured through its MarshalJSON,
// which encodes into a buffer of its own that encoding/json then scans and
// copies again. A test fills every field of callbacks.Request, so that one
// added to the contract cannot go missing here.
func encodeRequest(req *callbacks.Request, children Children) ([]byte, error) {
	if children == nil {
		children = childrenOf(req.Children)
	}
	deadline, err := req.Deadline.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode request: deadline: %w", err)
	}
	b := make([]byte, 0, 2048)
	b = append(b, `{"apiVersion":`...)
	b = jsonenc.AppendString(b, req.APIVersion)
	b = append(b, `,"kind":`...)
	b = jsonenc.AppendString(b, req.Kind)
	b = append(b, `,"uid":`...)
	b = jsonenc.AppendString(b, req.UID)
	b = append(b, `,"event":`...)
	b = jsonenc.AppendString(b, string(req.Event))
	b = append(b, `,"operator":`...)
	b = jsonenc.AppendString(b, req.Operator)
	b = append(b, `,"callback":`...)
	b = jsonenc.AppendString(b, req.Callback)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(req.Attempt), 10)
	b = append(b, `,"deadline":`...)
	b = append(b, deadline...)
	b = append(b, `,"object":`...)
	if b, err = jsonenc.Append(b, objectMap(req.Object)); err != nil {
		return nil, fmt.Errorf("encode request: object: %w", err)
	}
	if old := objectMap(req.Old); old != nil {
		b = append(b, `,"old":`...)
		if b, err = jsonenc.Append(b, old); err != nil {
			return nil, fmt.Errorf("encode request: old: %w", err)
		}
	}
	if len(req.Diff) > 0 {
		diff, err := json.Marshal(req.Diff)
		if err != nil {
			return nil, fmt.Errorf("encode request: diff: %w", err)
		}
		b = append(b, `,"diff":`...)
		b = append(b, diff...)
	}
	if req.OldUnavailable {
		b = append(b, `,"oldUnavailable":true`...)
	}
	if len(children) > 0 {
		b = append(b, `,"children":`...)
		if b, err = appendChildren(b, children); err != nil {
			return nil, fmt.Errorf("encode request: children: %w", err)
		}
	}
	if related := childrenOf(req.Related); len(related) > 0 {
		b = append(b, `,"related":`...)
		if b, err = appendChildren(b, related); err != nil {
			return nil, fmt.Errorf("encode request: related: %w", err)
		}
	}
	return append(b, '}'), nil
}

// appendChildren writes c as encoding/json does: keys sorted, a nil inner
// map as null.
func appendChildren(b []byte, c Children) ([]byte, error) {
	return jsonenc.AppendMap(b, c, func(b []byte, byName map[string]any) ([]byte, error) { return jsonenc.Append(b, byName) })
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
