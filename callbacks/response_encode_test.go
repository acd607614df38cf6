package callbacks

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Every field of Response, filled, is written as json.Marshal writes it: a
// field added to the contract fails here until encodeResponse writes it.
func TestEncodeResponseWritesEveryFieldOfResponse(t *testing.T) {
	child := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "c <&>"}, "data": map[string]any{"n": int64(3), "f": 1.5}}}
	yes := true
	var resp Response
	v := reflect.ValueOf(&resp).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Interface().(type) {
		case string:
			f.SetString(name + " <&>\u2028")
		case map[string]any:
			f.Set(reflect.ValueOf(map[string]any{"observed": int64(3), "name": "x", "list": []any{true, nil}}))
		case *[]*unstructured.Unstructured:
			f.Set(reflect.ValueOf(&[]*unstructured.Unstructured{child, child}))
		case []KubeEvent:
			f.Set(reflect.ValueOf([]KubeEvent{{Type: EventTypeWarning, Reason: "R", Message: "m \"q\""}, {Reason: "S", Message: "n"}}))
		case *Error:
			f.Set(reflect.ValueOf(&Error{Message: "failed <&>", Permanent: true, RetryAfter: "10s"}))
		case *bool:
			f.Set(reflect.ValueOf(&yes))
		default:
			t.Fatalf("field %s of type %s: fill it here and write it in encodeResponse", name, f.Type())
		}
	}
	sameAsMarshal(t, &resp)
}

func TestEncodeResponseLeavesOutWhatJSONMarshalLeavesOut(t *testing.T) {
	no := false
	for _, resp := range []*Response{
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

func TestEncodeResponseFailsAsJSONMarshalFails(t *testing.T) {
	for _, resp := range []*Response{
		{Status: map[string]any{"x": math.NaN()}},
		{Children: &[]*unstructured.Unstructured{{Object: map[string]any{"x": math.Inf(1)}}}},
	} {
		_, want := json.Marshal(resp)
		_, got := encodeResponse(resp)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("encodeResponse(%v) err = %v, json.Marshal's %v", resp, got, want)
		}
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
