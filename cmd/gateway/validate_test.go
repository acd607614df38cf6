package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateCommand(t *testing.T) {
	const (
		memcached = "../../examples/operators/memcached.yaml"
		nginx     = "../../examples/operators/nginx.yaml"
	)
	tests := []struct {
		name       string
		args       []string
		wantStdout string
		wantStderr string
		wantErr    string // substring of the returned error; empty: success
	}{
		{
			name: "valid files print one line per operator",
			args: []string{"-f", memcached, "-f", nginx, "-f", "testdata/single.yaml"},
			wantStdout: "memcached: ok (watch cache.example.com/v1alpha1 Memcached, 5 callbacks)\n" +
				"nginx: ok (watch web.example.com/v1 NginxServer, 4 callbacks)\n" +
				"configmaps: ok (watch v1 ConfigMap, 1 callback)\n",
		},
		{
			name: "every error of every document is printed with file, line and path",
			args: []string{"-f", "testdata/invalid.yaml"},
			wantStderr: "testdata/invalid.yaml:12: document 1 (broken): /spec/handler/timout: unknown field\n" +
				"testdata/invalid.yaml:14: document 1 (broken): /spec/callbacks/0: a timer callback needs interval\n" +
				"testdata/invalid.yaml:22: document 2 (memcached): /spec/handler: set url or service, here or on every callback; callbacks[0] (create) have none\n" +
				`testdata/invalid.yaml:28: document 2 (memcached): /spec/callbacks/0/events/0: value must be one of "create", "update", "delete", "resume", "timer", "sync"` + "\n",
			wantErr: "invalid WebhookOperator files: 4 errors",
		},
		{
			name:       "an operator name used in two files is refused",
			args:       []string{"-f", memcached, "-f", "testdata/duplicate.yaml"},
			wantStderr: `testdata/duplicate.yaml:5: document 1 (memcached): /metadata/name: operator "memcached" is already defined in ` + memcached + " (document 1)\n",
			wantErr:    "1 error",
		},
		{
			name:       "invalid YAML names the file and line",
			args:       []string{"-f", "testdata/not-yaml.yaml"},
			wantStderr: "testdata/not-yaml.yaml:4: document 1: invalid YAML: did not find expected ',' or ']'\n",
			wantErr:    "1 error",
		},
		{
			// Read as kubectl reads it, a bare on key is true.
			name:       "a callback still using on is told its new name",
			args:       []string{"-f", "testdata/renamed-on.yaml"},
			wantStderr: "testdata/renamed-on.yaml:11: document 1 (old): /spec/callbacks/0/true: `true`: kubectl reads a bare YAML 1.1 boolean key (on, yes, y, ...) as true; if it is `on`, that field was renamed to `events`\n",
			wantErr:    "1 error",
		},
		{
			name:    "without files there is nothing to check",
			args:    nil,
			wantErr: "give at least one file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			root := newRootCommand()
			root.SetArgs(append([]string{"validate"}, tt.args...))
			root.SetOut(&stdout)
			root.SetErr(&stderr)
			err := root.Execute()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error = %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if got := stdout.String(); got != tt.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", got, tt.wantStdout)
			}
			if got := stderr.String(); got != tt.wantStderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", got, tt.wantStderr)
			}
		})
	}
}

func TestValidateCommandErrorsAreRecognisable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := validateFiles(&stdout, &stderr, []string{"testdata/invalid.yaml"})
	if !errors.Is(err, errInvalid) {
		t.Errorf("error = %v, want errInvalid", err)
	}
}

func TestValidateCommandLine(t *testing.T) {
	const memcached = "../../examples/operators/memcached.yaml"
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, []byte("# nothing yet\n---\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noManifests := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		wantStdout string
		wantStderr string
		wantErr    string
	}{
		{
			name:       "files may be given as arguments",
			args:       []string{memcached, "testdata/single.yaml"},
			wantStdout: "memcached: ok (watch cache.example.com/v1alpha1 Memcached, 5 callbacks)\nconfigmaps: ok (watch v1 ConfigMap, 1 callback)\n",
		},
		{
			name:       "arguments and -f together",
			args:       []string{"-f", memcached, "testdata/single.yaml"},
			wantStdout: "memcached: ok (watch cache.example.com/v1alpha1 Memcached, 5 callbacks)\nconfigmaps: ok (watch v1 ConfigMap, 1 callback)\n",
		},
		{
			name:       "a file without operators is an error",
			args:       []string{empty},
			wantStderr: empty + ": no WebhookOperator documents\n",
			wantErr:    "1 error",
		},
		{
			name:       "a directory without manifests is an error",
			args:       []string{noManifests},
			wantStderr: noManifests + ": no .yaml, .yml or .json files\n",
			wantErr:    "1 error",
		},
		{
			name:    "without files there is nothing to check",
			wantErr: "give at least one file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := execute(t, append([]string{"validate"}, tt.args...)...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error = %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if stdout != tt.wantStdout || stderr != tt.wantStderr {
				t.Errorf("stdout:\n%s\nstderr:\n%s\nwant:\n%s\n%s", stdout, stderr, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}
