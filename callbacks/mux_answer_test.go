package callbacks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
)

// An answer the gateway would refuse whole (InvalidResponse, temporary:
// retried for ever) is not sent with 200: the Mux answers 500 naming what
// the gateway would name, and logs it as an error.
func TestMuxAnswersWhatTheGatewayWouldRefuseWithA500(t *testing.T) {
	nameless := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{}}}
	tests := []struct {
		name     string
		resp     *callbacks.Response
		err      error
		wantPath string
	}{
		{"an event type that is not Normal or Warning", (*callbacks.Response)(nil).WithEvent("normal", "Scaled", "3"), nil, "/events/0/type"},
		{"an event reason that is not CamelCase", callbacks.Status(map[string]any{"a": 1}).WithEvent(callbacks.EventTypeNormal, "scaled up", "3"), nil, "/events/0/reason"},
		{"an event without a reason, next to a good one", (*callbacks.Response)(nil).WithEvent("", "Good", "").WithEvent("", "", "x"), nil, "/events/1/reason"},
		{"a nil child", callbacks.Children(nil), nil, "/children/0"},
		{"a child without a name", callbacks.Children(nameless), nil, "/children/0/metadata/name"},
		{"a child with a namespace that is not a string", callbacks.Children(&unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c", "namespace": 3}}}), nil, "/children/0/metadata/namespace"},
		{"a children list that encodes as null", &callbacks.Response{Children: new([]*unstructured.Unstructured)}, nil, "/children"},
		{"an error without a message", &callbacks.Response{Error: &callbacks.Error{}}, nil, "/error/message"},
		{"a retryAfter that is not a Go duration", &callbacks.Response{Error: &callbacks.Error{Message: "busy", RetryAfter: "10"}}, nil, "/error/retryAfter"},
		{"a requeueAfter past what a Duration holds", &callbacks.Response{RequeueAfter: "99999999999h"}, nil, "/requeueAfter"},
		{"a bad event next to a returned error", (*callbacks.Response)(nil).WithEvent("Normal", "lower", ""), errors.New("db down"), "/events/0/reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What the gateway says of this answer, sent as it is.
			sent := *tt.resp
			if tt.err != nil {
				sent.Error = callbacks.ErrorFor(tt.err)
			}
			body, err := json.Marshal(&sent)
			if err != nil {
				t.Fatal(err)
			}
			_, derr := callbacks.DecodeResponse(body)
			var want *callbacks.ContractError
			if !errors.As(derr, &want) || !strings.Contains(want.Error(), tt.wantPath) {
				t.Fatalf("the gateway reads %s as %v, want a refusal naming %s", body, derr, tt.wantPath)
			}

			var logs bytes.Buffer
			mux := callbacks.NewMux(callbacks.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			mux.HandleEvent(callbacks.EventCreate, func(context.Context, *callbacks.Request) (*callbacks.Response, error) {
				return tt.resp, tt.err
			})
			res := callbackstest.Call(t, mux, callbackstest.NewRequest(t, callbacks.EventCreate, widget),
				callbackstest.ExpectStatus(http.StatusInternalServerError))
			got := res.ReportedError()
			if got.Permanent || !strings.Contains(got.Message, want.Error()) {
				t.Errorf("error = %+v, want a temporary one saying %q", got, want.Error())
			}
			if tt.err != nil && !strings.Contains(got.Message, tt.err.Error()) {
				t.Errorf("message %q drops the handler's own error %q", got.Message, tt.err)
			}
			if l := logs.String(); !strings.Contains(l, `"level":"ERROR"`) || !strings.Contains(l, tt.wantPath) {
				t.Errorf("logged %s, want an ERROR record naming %s", l, tt.wantPath)
			}
		})
	}
}

// An answer past the limits the gateway reads a response by (its nesting,
// its element count, its size) is refused whole by the gateway, as an
// InvalidResponse retried for ever; the Mux answers 500 naming the limit,
// as it does every other answer the gateway would refuse.
func TestMuxAnswersAnAnswerPastTheGatewaysLimitsWithA500(t *testing.T) {
	deep := map[string]any{}
	for range callbacks.MaxResponseDepth {
		deep = map[string]any{"a": deep}
	}
	child := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "c"}, "data": deep}}
	tests := []struct {
		name     string
		resp     *callbacks.Response
		opts     []callbacks.MuxOption
		gateway  string // what the gateway's DecodeResponse says, "" for the size, which its call client checks
		wantText []string
	}{
		{"a child nested deeper than the depth limit", callbacks.Children(child), nil,
			"MaxResponseDepth", []string{"MaxResponseDepth", fmt.Sprint(callbacks.MaxResponseDepth)}},
		{"a status with more elements than the element limit", callbacks.Status(map[string]any{"list": make([]any, callbacks.MaxResponseElements)}), nil,
			"MaxResponseElements", []string{"MaxResponseElements", fmt.Sprint(callbacks.MaxResponseElements)}},
		{"a status larger than the gateway reads", callbacks.Status(map[string]any{"blob": strings.Repeat("x", callbacks.DefaultMaxResponseBytes)}), nil,
			"", []string{"DefaultMaxResponseBytes", fmt.Sprint(callbacks.DefaultMaxResponseBytes)}},
		{"a status larger than a gateway's own --max-response-bytes", callbacks.Status(map[string]any{"blob": strings.Repeat("x", 2048)}),
			[]callbacks.MuxOption{callbacks.WithMaxResponseBytes(1024)}, "", []string{"1024 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(tt.resp)
			if err != nil {
				t.Fatal(err)
			}
			if _, derr := callbacks.DecodeResponse(body); tt.gateway != "" && (derr == nil || !strings.Contains(derr.Error(), tt.gateway)) {
				t.Fatalf("the gateway reads this answer as %v, want a refusal naming %s", derr, tt.gateway)
			}

			var logs bytes.Buffer
			mux := callbacks.NewMux(append(tt.opts, callbacks.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))...)
			mux.HandleEvent(callbacks.EventCreate, func(context.Context, *callbacks.Request) (*callbacks.Response, error) {
				return tt.resp, nil
			})
			res := callbackstest.Call(t, mux, callbackstest.NewRequest(t, callbacks.EventCreate, widget),
				callbackstest.ExpectStatus(http.StatusInternalServerError))
			got := res.ReportedError()
			if got.Permanent {
				t.Errorf("error = %+v, want a temporary one", got)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(got.Message, want) {
					t.Errorf("message %q does not name %q", got.Message, want)
				}
			}
			if l := logs.String(); !strings.Contains(l, `"level":"ERROR"`) || !strings.Contains(l, tt.wantText[0]) {
				t.Errorf("logged %.500s, want an ERROR record naming %s", l, tt.wantText[0])
			}
		})
	}
}

// A gateway run with a larger --max-response-bytes reads a larger answer:
// WithMaxResponseBytes lets the Mux send it.
func TestMuxSendsAnAnswerWithinARaisedSizeLimit(t *testing.T) {
	mux := callbacks.NewMux(callbacks.WithMaxResponseBytes(2 * callbacks.DefaultMaxResponseBytes))
	mux.HandleEvent(callbacks.EventCreate, func(context.Context, *callbacks.Request) (*callbacks.Response, error) {
		return callbacks.Status(map[string]any{"blob": strings.Repeat("x", callbacks.DefaultMaxResponseBytes)}), nil
	})
	res := callbackstest.Call(t, mux, callbackstest.NewRequest(t, callbacks.EventCreate, widget))
	if n := len(res.Body); n <= callbacks.DefaultMaxResponseBytes {
		t.Fatalf("answer is %d bytes, want one over DefaultMaxResponseBytes", n)
	}
}
