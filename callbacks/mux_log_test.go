package callbacks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
)

// A call's records carry the call's attributes as the request arrived
// (whatever the handler does to its request), name ServeHTTP as their
// source, and a record the level drops is not written.
func TestMuxLogsACallWithItsAttributes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		level    slog.Level
		path     string
		handler  func() error
		status   int    // 0: any 2xx
		wantMsg  string // "" for no record
		wantAttr map[string]any
	}{
		{name: "a handled call at info level writes nothing", level: slog.LevelInfo, path: "/update",
			handler: func() error { return nil }},
		{name: "a handled call at debug level", level: slog.LevelDebug, path: "/update",
			handler: func() error { return nil }, wantMsg: "handled callback"},
		{name: "a handler's error at info level", level: slog.LevelInfo, path: "/update",
			handler: func() error { return errors.New("boom") }, wantMsg: "handler reported an error",
			wantAttr: map[string]any{"error": "boom"}},
		{name: "a handler's panic", level: slog.LevelInfo, path: "/update",
			handler: func() error { panic("kaboom") }, status: 500, wantMsg: "handler panicked",
			wantAttr: map[string]any{"panic": "kaboom"}},
		{name: "no handler for the call", level: slog.LevelInfo, path: "/nowhere", status: 404,
			wantMsg: "no handler for callback", wantAttr: map[string]any{"path": "/nowhere"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tc.level, AddSource: true}))
			mux := callbacks.NewMux(callbacks.WithLogger(log))
			if tc.handler != nil {
				mux.Handle("/update", func(_ context.Context, req *callbacks.Request) (*callbacks.Response, error) {
					// What a handler does to its request is no part of the call's record.
					req.Object.SetName("renamed-by-the-handler")
					req.Attempt, req.Operator = 99, "changed"
					if err := tc.handler(); err != nil {
						return nil, err
					}
					return callbacks.Status(map[string]any{"ok": true}), nil
				})
			}
			req := callbackstest.NewRequest(t, callbacks.EventUpdate, widget, callbackstest.WithCallback("resize"))
			operator, delivery := req.Operator, req.UID
			opts := []callbackstest.CallOption{callbackstest.AtPath(tc.path)}
			if tc.status != 0 {
				opts = append(opts, callbackstest.ExpectStatus(tc.status))
			}
			callbackstest.Call(t, mux, req, opts...)
			if tc.wantMsg == "" {
				if buf.Len() > 0 {
					t.Fatalf("logged %s, want nothing", buf.String())
				}
				return
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
			}
			want := map[string]any{"msg": tc.wantMsg, "operator": operator, "callback": "resize", "event": "update",
				"object": "demo/w1", "attempt": float64(1), "delivery": delivery}
			for k, v := range tc.wantAttr {
				want[k] = v
			}
			for k, v := range want {
				if rec[k] != v {
					t.Errorf("record's %s = %v, want %v (record %v)", k, rec[k], v, rec)
				}
			}
			source, _ := rec["source"].(map[string]any)
			if fn, _ := source["function"].(string); !strings.HasSuffix(fn, ".(*Mux).ServeHTTP") {
				t.Errorf("record's source = %v, want the line in (*Mux).ServeHTTP that logged it", rec["source"])
			}
		})
	}
}

// debugFor is a handler that logs debug records for one operator only,
// which it learns from the attributes a logger is given (WithAttrs).
type debugFor struct {
	operator string
	debug    bool
	msgs     *[]string
}

func (h debugFor) Enabled(_ context.Context, l slog.Level) bool {
	return h.debug || l >= slog.LevelInfo
}
func (h debugFor) Handle(_ context.Context, r slog.Record) error {
	*h.msgs = append(*h.msgs, r.Message)
	return nil
}
func (h debugFor) WithAttrs(as []slog.Attr) slog.Handler {
	for _, a := range as {
		if a.Key == "operator" && a.Value.String() == h.operator {
			h.debug = true
		}
	}
	return h
}
func (h debugFor) WithGroup(string) slog.Handler { return h }

// A handler of the user's own gets the call's attributes as a logger's
// (WithAttrs), and decides on them whether a record is kept.
func TestMuxGivesAHandlerOfItsOwnTheCallsAttributes(t *testing.T) {
	for _, tc := range []struct {
		operator string
		want     []string
	}{
		{callbackstest.DefaultOperator, []string{"handled callback"}},
		{"another", nil},
	} {
		var msgs []string
		mux := callbacks.NewMux(callbacks.WithLogger(slog.New(debugFor{operator: tc.operator, msgs: &msgs})))
		mux.Handle("/update", func(context.Context, *callbacks.Request) (*callbacks.Response, error) { return nil, nil })
		callbackstest.Call(t, mux, callbackstest.NewRequest(t, callbacks.EventUpdate, widget), callbackstest.AtPath("/update"))
		if !slices.Equal(msgs, tc.want) {
			t.Errorf("debug for operator %q: logged %q, want %q", tc.operator, msgs, tc.want)
		}
	}
}
