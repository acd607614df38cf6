package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// silentAPIServer accepts connections and never answers, as an API server
// behind a stuck proxy does; it returns a kubeconfig for it.
func silentAPIServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn) // held open, never answered
			mu.Unlock()
		}
	}()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://%s"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, l.Addr())
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// status and reconcile give up on an API server that never answers after
// --request-timeout, with the error; status prints "?" for the counts it
// could not read, as for any failed listing.
func TestStatusAndReconcileGiveUpOnASilentAPIServer(t *testing.T) {
	kc := silentAPIServer(t)
	file := "../../examples/operators/memcached.yaml"
	for _, tc := range []struct {
		name    string
		args    []string
		printed string
	}{
		{"status", []string{"status", "-f", file}, "?"},
		{"reconcile", []string{"reconcile", "memcached", "default/example", "-f", file}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				out string
				err error
			}
			done := make(chan result, 1)
			go func() {
				out, _, err := execute(t, append(tc.args, "--kubeconfig", kc, "--request-timeout", "1s")...)
				done <- result{out, err}
			}()
			select {
			case r := <-done:
				if r.err == nil || !strings.Contains(r.err.Error(), "Timeout") && !strings.Contains(r.err.Error(), "deadline exceeded") {
					t.Errorf("error = %v, want a timeout", r.err)
				}
				if !strings.Contains(r.out, tc.printed) {
					t.Errorf("printed %q, want it to contain %q", r.out, tc.printed)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s still waits for the API server after 20 s with --request-timeout 1s", tc.name)
			}
		})
	}
}

// The default timeout is kubectl's flag with a bound: 30 s.
func TestRequestTimeoutDefaultsTo30s(t *testing.T) {
	for _, name := range []string{"status", "reconcile"} {
		cmd, _, err := newRootCommand().Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		f := cmd.Flags().Lookup("request-timeout")
		if f == nil || f.DefValue != "30s" {
			t.Errorf("%s --request-timeout: %+v, want default 30s", name, f)
		}
	}
}
