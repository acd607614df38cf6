package engine

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/opgate/opgate/gateway/spec"
)

func TestInternalHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1":                  true,
		"::1":                        true,
		"localhost":                  true,
		"api.localhost":              true,
		"memcached":                  true,
		"memcached.handlers.svc":     true,
		"memcached.handlers.svc.":    true,
		"h.ns.svc.cluster.local":     true,
		"H.NS.SVC.CLUSTER.LOCAL":     true,
		"10.0.0.7":                   false,
		"192.168.1.2":                false,
		"handler.example.com":        false,
		"svc.example.com":            false,
		"evil.svc.cluster.local.com": false,
		"":                           false,
	} {
		if got := internalHost(host); got != want {
			t.Errorf("internalHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestPlainHTTPWarnsOncePerOperator(t *testing.T) {
	tests := []struct {
		name      string
		handler   string
		override  string // the second callback's own URL
		wantWarn  bool
		wantURLs  []string
		forbidden []string // must not be logged: query and user info may hold secrets
	}{
		{"https outside", "https://handler.example.com/h", "", false, nil, nil},
		{"http to a Service", "http://h.ns.svc:8080/h", "", false, nil, nil},
		{"http to loopback", "http://127.0.0.1:9000/h", "", false, nil, nil},
		{"http outside, two callbacks share it", "http://user:pw@handler.example.com/h?token=abc", "", true,
			[]string{"http://handler.example.com/h"}, []string{"pw", "token=abc"}},
		{"one callback of two leaves the cluster", "https://handler.example.com/h", "http://10.1.2.3/cleanup", true,
			[]string{"http://10.1.2.3/cleanup"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := &spec.WebhookOperator{Spec: spec.OperatorSpec{
				Handler: spec.HandlerSpec{URL: tt.handler},
				Callbacks: []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
				},
			}}
			if tt.override != "" {
				op.Spec.Callbacks[1].Handler = &spec.HandlerSpec{URL: tt.override}
			}
			var buf bytes.Buffer
			warnPlainHTTP(slog.New(slog.NewTextHandler(&buf, nil)), op)
			out := buf.String()
			if got := strings.Count(out, "plain http"); got != map[bool]int{true: 1, false: 0}[tt.wantWarn] {
				t.Fatalf("%d warnings, want warn=%v; log:\n%s", got, tt.wantWarn, out)
			}
			for _, u := range tt.wantURLs {
				if !strings.Contains(out, u) {
					t.Errorf("log does not name %s:\n%s", u, out)
				}
			}
			for _, s := range tt.forbidden {
				if strings.Contains(out, s) {
					t.Errorf("log shows %q:\n%s", s, out)
				}
			}
		})
	}
}
