package charts

import (
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// Platform teams install the chart as a dependency of an umbrella chart.
// Helm then always gives it the umbrella's `global` values, which the
// schema must take (else the chart cannot be a dependency at all, the error
// naming a value no one set), while still reading the values given to it
// under its own key.
func TestChartRendersAsADependencyOfAnUmbrellaChart(t *testing.T) {
	self, err := filepath.Abs(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	umbrella := "apiVersion: v2\nname: platform\nversion: 0.1.0\ndependencies:\n  - name: opgate\n    version: \">=0.0.0-0\"\n    repository: file://" + self + "\n"
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte(umbrella), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := helm(t, "dependency", "build", dir); err != nil {
		t.Fatalf("helm dependency build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		set  []string
	}{
		{"no global values set", nil},
		{"global values set", []string{"--set", "global.imageRegistry=registry.example", "--set", "global.labels.team=platform"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", "p", dir, "--namespace", "ops", "--set", "opgate.replicaCount=3"}, tc.set...)
			out, err := helm(t, args...)
			if err != nil {
				t.Fatalf("helm %v: %v\n%s", args, err, out)
			}
			var d appsv1.Deployment
			find(t, decode(t, out), "Deployment", "p-opgate", &d)
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
				t.Errorf("opgate.replicaCount=3 from the umbrella: the Deployment has %v replicas", d.Spec.Replicas)
			}
		})
	}
}
