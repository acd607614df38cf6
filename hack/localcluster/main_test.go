package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/opgate/opgate/internal/localcluster"
)

func TestCommandsWithoutACluster(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		wantErr    string
		wantErrIs  error
		wantStdout string
	}{
		{name: "no command", args: nil, wantErr: "missing command"},
		{name: "unknown command", args: []string{"start"}, wantErr: `unknown command "start"`},
		{name: "down with nothing running", args: []string{"down", "--dir", dir}, wantStdout: "nothing is running in " + dir},
		{name: "up without binaries", args: []string{"up", "--dir", dir, "--bin-dir", t.TempDir()},
			wantErrIs: localcluster.ErrMissingBinaries},
		{name: "stray argument", args: []string{"run", "--dir", dir, "now"}, wantErr: `unexpected arguments ["now"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tt.args, &stdout, &stderr)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
			case tt.wantErrIs != nil:
				if !errors.Is(err, tt.wantErrIs) {
					t.Errorf("error %v, want %v", err, tt.wantErrIs)
				}
			case err != nil:
				t.Errorf("unexpected error %v", err)
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
		})
	}
}
