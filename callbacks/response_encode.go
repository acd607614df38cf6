package callbacks

import (
	"encoding/json"

	"github.com/opgate/opgate/internal/jsonenc"
)

// encodeResponse encodes resp as json.Marshal(resp) does, byte for byte.
// It is written out field by field: encoding/json reaches each child
// through Unstructured's MarshalJSON, which encodes into a buffer of its
// own that encoding/json then scans and copies again (a tenth of what a
// Mux spends on a callback). A test fills every field of Response, so that
// one added to the contract cannot go missing here. Where encoding fails
// (a value JSON cannot hold), json.Marshal is asked, for its error.
func encodeResponse(resp *Response) ([]byte, error) {
	if resp == nil {
		return []byte("null"), nil
	}
	b, err := appendResponse(make([]byte, 0, 512), resp)
	if err != nil {
		return json.Marshal(resp)
	}
	return b, nil
}

func appendResponse(b []byte, resp *Response) ([]byte, error) {
	var err error
	b = append(b, '{')
	if len(resp.Status) > 0 {
		b = append(b, `"status":`...)
		if b, err = jsonenc.Append(b, resp.Status); err != nil {
			return nil, err
		}
	}
	switch {
	case resp.Children == nil:
	case *resp.Children == nil:
		// null, as json.Marshal writes it: the gateway refuses it, where []
		// would prune every child.
		b = append(member(b), `"children":null`...)
	default:
		b = append(member(b), `"children":[`...)
		for i, child := range *resp.Children {
			if i > 0 {
				b = append(b, ',')
			}
			var obj any // a nil child is null, as a nil map is
			if child != nil {
				obj = child.Object
			}
			if b, err = jsonenc.Append(b, obj); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	if resp.RequeueAfter != "" {
		b = jsonenc.AppendString(append(member(b), `"requeueAfter":`...), resp.RequeueAfter)
	}
	if len(resp.Events) > 0 {
		b = append(member(b), `"events":[`...)
		for i, ev := range resp.Events {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if ev.Type != "" {
				b = append(jsonenc.AppendString(append(b, `"type":`...), ev.Type), ',')
			}
			b = jsonenc.AppendString(append(b, `"reason":`...), ev.Reason)
			b = jsonenc.AppendString(append(b, `,"message":`...), ev.Message)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if e := resp.Error; e != nil {
		b = jsonenc.AppendString(append(member(b), `"error":{"message":`...), e.Message)
		if e.Permanent {
			b = append(b, `,"permanent":true`...)
		}
		if e.RetryAfter != "" {
			b = jsonenc.AppendString(append(b, `,"retryAfter":`...), e.RetryAfter)
		}
		b = append(b, '}')
	}
	if resp.Finalized != nil {
		b = append(member(b), `"finalized":`...)
		if *resp.Finalized {
			b = append(b, "true"...)
		} else {
			b = append(b, "false"...)
		}
	}
	return append(b, '}'), nil
}

// member puts the comma before an object's member unless it is the first.
func member(b []byte) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	return b
}
