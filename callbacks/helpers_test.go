package callbacks_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
)

func TestErrorForClassifiesErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want *callbacks.Error
	}{
		{"nil is no error", nil, nil},
		{"a plain error is temporary", errors.New("boom"), &callbacks.Error{Message: "boom"}},
		{"a sub-second retryAfter keeps its unit", callbacks.Temporary("busy", 1500*time.Millisecond), &callbacks.Error{Message: "busy", RetryAfter: "1.5s"}},
		{"an hour is a valid Go duration", callbacks.Temporary("busy", time.Hour), &callbacks.Error{Message: "busy", RetryAfter: "1h0m0s"}},
		{"a negative retryAfter leaves the delay to the backoff", callbacks.Temporary("busy", -time.Second), &callbacks.Error{Message: "busy"}},
		{"a permanent error never has retryAfter", callbacks.Permanent("bad"), &callbacks.Error{Message: "bad", Permanent: true}},
		{"a wrapped class is found", fmt.Errorf("step 2: %w", callbacks.Temporary("busy", time.Second)), &callbacks.Error{Message: "step 2: busy", RetryAfter: "1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := callbacks.ErrorFor(tt.err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ErrorFor() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResponseBuildersEncodeTheContract(t *testing.T) {
	child := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c"}}}
	tests := []struct {
		name string
		resp *callbacks.Response
		want string
	}{
		{"Status merges later fields in", callbacks.Status(map[string]any{"a": 1}).WithStatus(map[string]any{"b": 2}), `{"status":{"a":1,"b":2}}`},
		{"Children without arguments is an empty, present list", callbacks.Children(), `{"children":[]}`},
		{"WithChildren appends", callbacks.Children(child).WithChildren(child), `{"children":[` + cm + `,` + cm + `]}`},
		{"Finalized false keeps the finalizer", callbacks.Finalized(false).WithRequeueAfter(30 * time.Second), `{"requeueAfter":"30s","finalized":false}`},
		{"WithEvent on nil starts a response", (*callbacks.Response)(nil).WithEvent(callbacks.EventTypeNormal, "Scaled", "3"), `{"events":[{"type":"Normal","reason":"Scaled","message":"3"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.resp)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("encoded %s, want %s", got, tt.want)
			}
			if _, err := callbacks.DecodeResponse(got); err != nil {
				t.Errorf("breaks the response schema: %v", err)
			}
		})
	}
}

const cm = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`

func TestRequestHelpersReadTheObject(t *testing.T) {
	req := callbackstest.NewRequest(t, callbacks.EventSync, `
		apiVersion: example.com/v1
		kind: Widget
		metadata: {name: w1, namespace: demo}
		spec: {size: 3, image: "nginx:1.27", ratio: 0.5}`,
		callbackstest.WithChildren(`{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w1", "namespace": "demo"}}`),
		callbackstest.WithRelated(
			`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w1-b", "namespace": "demo"}}`,
			`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w1-a", "namespace": "demo"}}`,
		))

	if n, err := req.ObjectInt64("spec", "size"); err != nil || n != 3 {
		t.Errorf("ObjectInt64(spec.size) = %d, %v; want 3", n, err)
	}
	if _, err := req.ObjectInt64("spec", "replicas"); err == nil {
		t.Error("ObjectInt64 of an absent field succeeded; a missing field must not read as 0")
	}
	if _, err := req.ObjectInt64("spec", "ratio"); err == nil {
		t.Error("ObjectInt64 of a fraction succeeded")
	}
	if s, found, err := req.ObjectString("spec", "image"); err != nil || !found || s != "nginx:1.27" {
		t.Errorf("ObjectString(spec.image) = %q, %v, %v", s, found, err)
	}
	if req.Child("apps/v1", "Deployment", "w1") == nil {
		t.Error("Child did not find the Deployment")
	}
	if req.Child("apps/v1", "StatefulSet", "w1") != nil {
		t.Error("Child found a kind that was not sent")
	}
	var names []string
	for _, p := range req.RelatedObjects("v1", "Pod") {
		names = append(names, p.GetName())
	}
	if want := []string{"w1-a", "w1-b"}; !reflect.DeepEqual(names, want) {
		t.Errorf("RelatedObjects = %v, want %v sorted", names, want)
	}
}
