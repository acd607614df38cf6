package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/opgate/opgate/internal/localcluster"
)

// Helm reads the numbers of a values file (-f) as float64 and prints large
// ones in exponent form (1e+06), which integer flags refuse: the pod would
// crash-loop. The chart's rendered arguments must parse with run's own flags
// and mean the values given.
func TestChartRendersArgumentsRunParsesFromAValuesFile(t *testing.T) {
	values := `opsPort: 10000
gateway:
  workers: 1000000
  kubeAPIQPS: 1000000
  kubeAPIBurst: 5000000
  maxResponseBytes: 100000000
`
	want := map[string]string{
		"addr":               ":10000",
		"workers":            "1000000",
		"kube-api-qps":       "1e+06", // a float32 flag prints itself so
		"kube-api-burst":     "5000000",
		"max-response-bytes": "100000000",
	}
	args := renderedGatewayArgs(t, values)
	cmd := newRunCommand()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("gateway run refuses the chart's arguments %q: %v", args, err)
	}
	for name, v := range want {
		if got := cmd.Flag(name).Value.String(); got != v {
			t.Errorf("--%s = %s, want %s (args %q)", name, got, v, args)
		}
	}
}

// renderedGatewayArgs renders charts/opgate with the values file's content
// and returns the gateway container's arguments.
func renderedGatewayArgs(t *testing.T, values string) []string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(filepath.Join(localcluster.DefaultBinDir(), "helm"), "template", "rel", "../../charts/opgate",
		"--show-only", "templates/deployment.yaml", "-f", file)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template (run `make tools` for helm): %v\n%s", err, errOut.String())
	}
	var d appsv1.Deployment
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out.String()), 4096).Decode(&d); err != nil {
		t.Fatalf("decode the rendered Deployment: %v", err)
	}
	if len(d.Spec.Template.Spec.Containers) == 0 {
		t.Fatalf("the rendered Deployment has no container:\n%s", out.String())
	}
	return d.Spec.Template.Spec.Containers[0].Args
}
