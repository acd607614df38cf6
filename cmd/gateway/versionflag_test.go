package main

import (
	"strings"
	"testing"

	"github.com/opgate/opgate/internal/version"
)

func TestVersionFlagAndHelp(t *testing.T) {
	want := version.String() + "\n"
	tests := []struct {
		name     string
		args     []string
		wantHelp bool // else the version
	}{
		{"long flag prints the version", []string{"--version"}, false},
		{"short flag prints the version", []string{"-v"}, false},
		{"help wins over version, as in cobra", []string{"--version", "--help"}, true},
		{"version=false is help", []string{"--version=false"}, true},
		{"no arguments is help", nil, true},
		{"help command on the root is help", []string{"help"}, true},
		{"a subcommand's help is its help", []string{"run", "--help"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := execute(t, tt.args...)
			if err != nil || errOut != "" {
				t.Fatalf("error %v, stderr %q", err, errOut)
			}
			if !tt.wantHelp {
				if out != want {
					t.Errorf("printed %q, want %q", out, want)
				}
				return
			}
			if !strings.Contains(out, "Usage:\n") {
				t.Errorf("printed %q, want help", out)
			}
		})
	}
}

// The root's help lists the flag exactly as cobra's own version flag did.
func TestRootHelpListsVersionFlag(t *testing.T) {
	out, _, err := execute(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Flags:\n  -h, --help      help for gateway\n  -v, --version   version for gateway\n") {
		t.Errorf("help is\n%s\nwant the help and version flags as cobra lists them", out)
	}
	if out, _, _ := execute(t, "run", "--version"); out == version.String()+"\n" {
		t.Error("run --version printed the version; the flag is the root's only")
	}
}
