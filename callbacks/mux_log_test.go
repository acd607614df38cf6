package callbacks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
)

// A call's records carry the call's attributes; a record the level drops
// is not written (and its logger not built).
func TestMuxLogsACallWithItsAttributes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		level   slog.Level
		fail    bool
		wantMsg string // "" for no record
	}{
		{"a handled call at info level writes nothing", slog.LevelInfo, false, ""},
		{"a handled call at debug level", slog.LevelDebug, false, "handled callback"},
		{"a handler's error at info level", slog.LevelInfo, true, "handler reported an error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			mux := callbacks.NewMux(callbacks.WithLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tc.level}))))
			mux.HandleEvent(callbacks.EventUpdate, func(context.Context, *callbacks.Request) (*callbacks.Response, error) {
				if tc.fail {
					return nil, errors.New("boom")
				}
				return callbacks.Status(map[string]any{"ok": true}), nil
			})
			req := callbackstest.NewRequest(t, callbacks.EventUpdate, widget, callbackstest.WithCallback("resize"))
			callbackstest.Call(t, mux, req)
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
			want := map[string]any{"msg": tc.wantMsg, "operator": req.Operator, "callback": "resize", "event": "update",
				"object": "demo/w1", "attempt": float64(1), "delivery": req.UID}
			for k, v := range want {
				if rec[k] != v {
					t.Errorf("record's %s = %v, want %v (record %v)", k, rec[k], v, rec)
				}
			}
		})
	}
}
