package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestGatewayImportsNoCELOrAPIServer guards the gateway's resident memory
// (docs/performance.md "Memory"): the API server's CEL environment, its
// feature gates and OpenTelemetry cost several MiB once imported, since
// their packages build tables and register gates when they initialise, used
// or not. The status checker does without them (gateway/check); this fails
// with the importing package when any of them comes back.
func TestGatewayImportsNoCELOrAPIServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, ".").Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list: %v\n%s", err, exit.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	heavy := []string{"github.com/google/cel-go/", "github.com/antlr4-go/", "k8s.io/apiserver/", "go.opentelemetry.io/"}
	isHeavy := func(pkg string) bool {
		for _, h := range heavy {
			if strings.HasPrefix(pkg+"/", h) {
				return true
			}
		}
		return false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || isHeavy(fields[0]) {
			continue
		}
		for _, imp := range fields[1:] {
			if isHeavy(imp) {
				t.Errorf("the gateway imports %s through %s", imp, fields[0])
			}
		}
	}
}
