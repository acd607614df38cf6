package callbacks_test

import (
	"testing"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
)

// The signature covers the body, not the path (docs/handlers.md, "The
// signature does not cover the path"): a signed timer request replayed to
// /delete reaches what /delete routes to when paths are registered, and the
// timer's own handler when the Mux routes by the signed callback id or
// event, as the docs advise.
func TestMuxRoutesASignedRequestReplayedToAnotherPath(t *testing.T) {
	secret := []byte("s3cret")
	verifier, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		register func(*callbacks.Mux)
		want     string
	}{
		{"routed by path, the path decides: the documented limitation", func(m *callbacks.Mux) {
			m.Handle("/backup", answer("backup"))
			m.Handle("/delete", answer("cleanup"))
		}, "cleanup"},
		{"routed by callback id, the signed body decides", func(m *callbacks.Mux) {
			m.Handle("backup", answer("backup"))
			m.Handle("cleanup", answer("cleanup"))
		}, "backup"},
		{"routed by event, the signed body decides", func(m *callbacks.Mux) {
			m.HandleEvent(callbacks.EventTimer, answer("backup"))
			m.HandleEvent(callbacks.EventDelete, answer("cleanup"))
		}, "backup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := callbacks.NewMux(callbacks.WithVerifier(verifier))
			tt.register(mux)
			captured := callbackstest.NewRequest(t, callbacks.EventTimer, widget, callbackstest.WithCallback("backup"))
			res := callbackstest.Call(t, mux, captured, callbackstest.Signed(secret), callbackstest.AtPath("/delete"))
			if got := res.StatusField("handledBy"); got != tt.want {
				t.Errorf("handled by %v, want %q", got, tt.want)
			}
		})
	}
}
