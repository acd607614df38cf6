package callbacks_test

import (
	"os/exec"
	"strings"
	"testing"
)

// A Go handler author's build (callbacks, callbackstest, essence) must not
// pull in the API server's libraries: they cost minutes of compile time and
// hundreds of packages, and a handler needs none of them.
func TestHandlerToolkitDoesNotDependOnTheAPIServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/opgate/opgate/callbacks/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "k8s.io/apiextensions-apiserver") || d == "k8s.io/apiserver" || strings.HasPrefix(d, "k8s.io/apiserver/") {
			t.Errorf("callbacks/... depends on %s", d)
		}
	}
}
