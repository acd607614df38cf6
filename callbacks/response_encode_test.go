package callbacks

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Every field of Response, and of the structs in it, filled, is written as
// json.Marshal writes it: a field added to the contract fails here until
// encodeResponse writes it.
func TestEncodeResponseWritesEveryFieldOfResponse(t *testing.T) {
	var resp Response
	fill(t, reflect.ValueOf(&resp).Elem())
	sameAsMarshal(t, &resp)
}

// fill sets every field of the struct v to a value that is not left out.
func fill(t *testing.T, v reflect.Value) {
	t.Helper()
	child := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "c <&>"}, "data": map[string]any{"n": int64(3), "f": 1.5}}}
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Interface().(type) {
		case string:
			f.SetString(name + " <&>\u2028")
		case bool:
			f.SetBool(true)
		case map[string]any:
			f.Set(reflect.ValueOf(map[string]any{"observed": int64(3), "name": "x", "list": []any{true, nil}}))
		case *[]*unstructured.Unstructured:
			f.Set(reflect.ValueOf(&[]*unstructured.Unstructured{child, child}))
		case []KubeEvent:
			events := make([]KubeEvent, 2)
			fill(t, reflect.ValueOf(&events[0]).Elem())
			fill(t, reflect.ValueOf(&events[1]).Elem())
			f.Set(reflect.ValueOf(events))
		case *Error:
			e := &Error{}
			fill(t, reflect.ValueOf(e).Elem())
			f.Set(reflect.ValueOf(e))
		case *bool:
			yes := true
			f.Set(reflect.ValueOf(&yes))
		default:
			t.Fatalf("field %s of type %s: fill it here and write it in encodeResponse", name, f.Type())
		}
	}
}

func TestEncodeResponseLeavesOutWhatJSONMarshalLeavesOut(t *testing.T) {
	no := false
	var noChildren []*unstructured.Unstructured // a slice filled by a loop that added nothing
	for _, resp := range []*Response{
		{Children: &noChildren}, // null, which the gateway refuses, not [], which prunes every child
		{},
		{Status: map[string]any{}},
		{Children: &[]*unstructured.Unstructured{}},
		{Children: &[]*unstructured.Unstructured{nil, {}, {Object: map[string]any{}}}},
		{Events: []KubeEvent{}},
		{Events: []KubeEvent{{}}},
		{Error: &Error{}},
		{Error: &Error{Message: "m", RetryAfter: "1s"}},
		{Finalized: &no},
		{RequeueAfter: "1m", Finalized: &no},
	} {
		sameAsMarshal(t, resp)
	}
}

// A value JSON cannot hold fails the hand-written encoding, which then
// hands the response to json.Marshal for its error.
func TestEncodeResponseFailsAsJSONMarshalFails(t *testing.T) {
	for _, resp := range []*Response{
		{Status: map[string]any{"x": math.NaN()}},
		{Children: &[]*unstructured.Unstructured{{Object: map[string]any{"x": math.Inf(1)}}}},
	} {
		if b, err := appendResponse(nil, resp); err == nil {
			t.Errorf("appendResponse(%v) = %s, want an error", resp, b)
		}
		_, want := json.Marshal(resp)
		_, got := encodeResponse(resp)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("encodeResponse(%v) err = %v, json.Marshal's %v", resp, got, want)
		}
	}
}

func TestEncodeResponseOfNilIsNull(t *testing.T) {
	if b, err := encodeResponse(nil); err != nil || string(b) != "null" {
		t.Errorf("encodeResponse(nil) = %s, %v; want null as json.Marshal", b, err)
	}
}

func sameAsMarshal(t *testing.T, resp *Response) {
	t.Helper()
	want, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encodeResponse:\n got %s\nwant %s", got, want)
	}
}
