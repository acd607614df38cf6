package integration

import (
	"fmt"
	"os"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/internal/testenv"
)

// cfg is the real apiserver every test in this package talks to; envtest
// starts once per package (about 5 s).
var cfg *rest.Config

func TestMain(m *testing.M) {
	env, err := testenv.Start("testdata/crds", "../../crds", "../../examples/crds")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	cfg = env.Config
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: stop:", err)
	}
	os.Exit(code)
}
