package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// demoRegistration is the memcached WebhookOperator `make demo` runs.
const demoRegistration = "../../examples/operators/memcached.yaml"

// TestReadmeRegistrationIsTheOneTheDemoRuns keeps README.md's example the
// registration hack/demo.sh starts the gateway with, field for field, so
// that what a reader copies is what the demo proves.
func TestReadmeRegistrationIsTheOneTheDemoRuns(t *testing.T) {
	demo, err := os.ReadFile("../../hack/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(demo), strings.TrimPrefix(demoRegistration, "../../")) {
		t.Fatalf("hack/demo.sh no longer runs %s; point this test at the registration it runs", demoRegistration)
	}
	want, err := os.ReadFile(demoRegistration)
	if err != nil {
		t.Fatal(err)
	}
	var readme, example map[string]any
	if err := yaml.Unmarshal(readmeRegistration(t), &readme); err != nil {
		t.Fatalf("README.md's registration: %v", err)
	}
	if err := yaml.Unmarshal(want, &example); err != nil {
		t.Fatalf("%s: %v", demoRegistration, err)
	}
	if !reflect.DeepEqual(readme, example) {
		got, _ := yaml.Marshal(readme)
		exp, _ := yaml.Marshal(example)
		t.Errorf("README.md's registration differs from %s, which make demo runs:\nREADME:\n%s\n%s:\n%s", demoRegistration, got, demoRegistration, exp)
	}
}

// readmeRegistration is the WebhookOperator of README.md's "What it is",
// read from the README itself so that the test follows it.
func readmeRegistration(t *testing.T) []byte {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1) {
		if strings.Contains(string(m[1]), "kind: WebhookOperator") {
			return m[1]
		}
	}
	t.Fatal("README.md has no yaml block with a WebhookOperator")
	return nil
}

// startGoMemcachedHandler builds examples/handlers/memcached and runs it on
// a free port until the test ends.
func startGoMemcachedHandler(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH, and building the memcached handler needs it: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "memcached")
	build := exec.Command(goTool, "build", "-o", bin, "../../examples/handlers/memcached")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build the memcached handler: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	return startHandlerProcess(t, "the Go memcached handler", addr, bin, "--addr", addr)
}

// TestReadmeRegistrationWorksWithTheShippedMemcachedHandlers calls the
// create, update and delete callbacks of the README's registration against
// both shipped memcached handlers, which route on the callbacks' paths.
func TestReadmeRegistrationWorksWithTheShippedMemcachedHandlers(t *testing.T) {
	handlers := []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"go", startGoMemcachedHandler},
		{"python", func(t *testing.T) string { return startPythonHandler(t, requirePython(t)) }},
	}
	callbacks := []struct {
		id    string
		args  []string
		check func(t *testing.T, rep *callReport)
	}{
		{"create-deployment", nil, wantDeploymentOf(3)},
		{"resize", []string{"--old", callTestdata + "memcached-old.yaml"}, wantDeploymentOf(3)},
		{"cleanup", nil, func(t *testing.T, rep *callReport) {
			if rep.Finalized == nil || !*rep.Finalized {
				t.Errorf("finalized = %v, want true", rep.Finalized)
			}
		}},
	}
	readme := readmeRegistration(t)
	for _, h := range handlers {
		t.Run(h.name, func(t *testing.T) {
			registration := pointRegistrationAt(t, readme, h.start(t))
			for _, cb := range callbacks {
				t.Run(cb.id, func(t *testing.T) {
					args := append([]string{"-f", registration, "--callback", cb.id, "--object", callTestdata + "memcached.yaml",
						"--crd", memcachedCRD, "-o", "json", "--show-children"}, slices.Clone(cb.args)...)
					r := runCall(t, args...)
					if r.code != 0 || r.rep == nil || r.rep.Outcome.Result != resultSuccess {
						t.Fatalf("exit %d (%v), want success\nstdout:\n%s\nstderr:\n%s", r.code, r.err, r.stdout, r.stderr)
					}
					cb.check(t, r.rep)
				})
			}
		})
	}
}

func wantDeploymentOf(replicas float64) func(t *testing.T, rep *callReport) {
	return func(t *testing.T, rep *callReport) {
		t.Helper()
		if len(rep.Children) != 1 || rep.Children[0].Kind != "Deployment" || rep.Children[0].Name != "example-memcached" {
			t.Fatalf("children = %+v, want the Deployment example-memcached", rep.Children)
		}
		got, _, _ := unstructured.NestedFloat64(rep.Children[0].Object, "spec", "replicas") // JSON numbers decode as float64
		if got != replicas {
			t.Errorf("replicas = %v, want %v", got, replicas)
		}
	}
}
