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

// testEnv is cfg's control plane: its KubeConfig is for tools the tests
// run as processes (helm, the gateway binary).
var testEnv *testenv.Env

func TestMain(m *testing.M) {
	env, err := testenv.Start("testdata/crds", "../../crds", "../../examples/crds")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	cfg, testEnv = env.Config, env
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: stop:", err)
	}
	os.Exit(code)
}
