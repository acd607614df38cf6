package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/spec"
)

// TestChartInstallUpgradeUninstall installs the chart as a user would
// (rbac.rules from `gateway rbac`, one WebhookOperator in values): every
// rendered object passes a server-side dry run, then exists; an upgrade
// with changed values changes them; uninstall leaves only the CRD.
// (kwok runs no containers, so the pods themselves prove nothing here.)
func TestChartInstallUpgradeUninstall(t *testing.T) {
	bins := buildBinaries(t)
	installCRDs(t)
	ns := NewNamespace(t, Clientset(t))
	const release = "opgate-e2e"
	opFile := operatorFile(t, "memcached.yaml", func(op *spec.WebhookOperator) {
		op.Spec.Watch.Namespaces = []string{ns}
	})
	values := chartValues(t, bins, opFile, func(v map[string]any) {
		op, err := spec.LoadFiles(opFile)
		if err != nil {
			t.Fatal(err)
		}
		v["operators"] = []any{map[string]any{"name": "chart-e2e-" + ns, "spec": op[0].Spec}}
	})
	objs := renderChart(t, release, ns, "-f", values, "--no-hooks") // the uninstall hook: TestChartUninstallHookReleasesTheOperatorsObjects
	c := newChartClient(t)
	ctx := context.Background()
	for _, u := range objs {
		if err := c.dryRunCreate(ctx, u); err != nil {
			t.Errorf("server-side dry run of %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	kinds := map[string]bool{}
	for _, u := range objs {
		kinds[u.GetKind()] = true
	}
	for _, k := range []string{"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "PodDisruptionBudget", "WebhookOperator"} {
		if !kinds[k] {
			t.Errorf("the chart rendered no %s", k)
		}
	}

	helm(t, "install", release, "charts/opgate", "--namespace", ns, "-f", values)
	t.Cleanup(func() { _, _ = helmErr(t, "uninstall", release, "--namespace", ns) })
	c.waitObjects(t, objs, true)

	helm(t, "upgrade", release, "charts/opgate", "--namespace", ns, "--reuse-values",
		"--set", "replicaCount=3", "--set", "podDisruptionBudget.enabled=false", "--set", "gateway.logLevel=debug")
	Eventually(t, rolloutTimeout, "the upgrade's values in the cluster", func(ctx context.Context) (bool, string, error) {
		d, err := Clientset(t).AppsV1().Deployments(ns).Get(ctx, release, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		_, pdbErr := Clientset(t).PolicyV1().PodDisruptionBudgets(ns).Get(ctx, release, metav1.GetOptions{})
		args := d.Spec.Template.Spec.Containers[0].Args
		ok := *d.Spec.Replicas == 3 && slices.Contains(args, "--log-level=debug") && apierrors.IsNotFound(pdbErr)
		return ok, fmt.Sprintf("replicas %d, args %v, PodDisruptionBudget: %v", *d.Spec.Replicas, args, pdbErr), nil
	})

	helm(t, "uninstall", release, "--namespace", ns, "--wait")
	c.waitObjects(t, objs, false)
	secrets, err := Clientset(t).CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
	if err != nil || len(secrets.Items) != 0 {
		t.Errorf("helm's release records left after uninstall: %v %v", secrets, err)
	}
	if _, err := dynamicClient(t).Resource(crdResource).Get(ctx, spec.Resource+"."+spec.Group, metav1.GetOptions{}); err != nil {
		t.Errorf("the WebhookOperator CRD is gone after uninstall (helm keeps crds/): %v", err)
	}
}

// chartValues writes a values file whose rbac.rules are what `gateway
// rbac` prints for the operator file, edited by edit.
func chartValues(t testing.TB, bins binaries, opFile string, edit func(map[string]any)) string {
	t.Helper()
	out := runGatewayCommand(t, bins, "rbac", "-f", opFile, "--crd", exampleCRD(t, "memcacheds.cache.example.com.yaml"), "--values")
	var v map[string]any
	if err := yaml.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("gateway rbac --values printed no YAML: %v\n%s", err, out)
	}
	if edit != nil {
		edit(v)
	}
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
