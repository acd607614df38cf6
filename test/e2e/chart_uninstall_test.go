package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

// TestChartUninstallHookReleasesTheOperatorsObjects: with a WebhookOperator
// in the chart's operators value and a gateway running as the chart's
// ServiceAccount holding its finalizer on a Memcached, the pre-delete
// hook's command, run with the hook ServiceAccount's token and the hook
// Job's own arguments, deletes the operator and returns once the gateway
// released it: no WebhookOperator, no finalizer left. Then helm uninstall
// succeeds. (kwok runs no containers: the hook Job itself completes
// without running, so the command runs here as a local process.)
func TestChartUninstallHookReleasesTheOperatorsObjects(t *testing.T) {
	bins := buildBinaries(t)
	installCRDs(t)
	gwNS := NewNamespace(t, Clientset(t))
	w := newWalk(t, memcachedResource, "Memcached")
	const release = "opgate-uninstall"
	opName := "uninstall-" + gwNS[strings.LastIndex(gwNS, "-")+1:] // unique, and short enough (spec.MaxNameLength)
	handlerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	h := goMemcachedHandler(t, bins, handlerAddr, "")
	h.waitListening(t, handlerAddr)
	opFile := operatorFile(t, "memcached.yaml", func(op *spec.WebhookOperator) {
		op.Spec.Watch.Namespaces = []string{w.ns}
		op.Spec.Handler.URL = "http://" + handlerAddr
	})
	values := chartValues(t, bins, opFile, func(v map[string]any) {
		op, err := spec.LoadFiles(opFile)
		if err != nil {
			t.Fatal(err)
		}
		v["operators"] = []any{map[string]any{"name": opName, "spec": op[0].Spec}}
	})
	hooks := renderChart(t, release, gwNS, "-f", values, "--show-only", "templates/uninstall-hook.yaml")
	c := newChartClient(t)
	ctx := context.Background()
	for _, u := range hooks {
		if err := c.dryRunCreate(ctx, u); err != nil {
			t.Errorf("server-side dry run of hook %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	helm(t, "install", release, "charts/opgate", "--namespace", gwNS, "-f", values)
	t.Cleanup(func() { _, _ = helmErr(t, "uninstall", release, "--namespace", gwNS, "--no-hooks") })

	w.step("the gateway runs as the chart's ServiceAccount and holds its finalizer on a Memcached")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	gw := startProcess(t, "gateway-sa", []string{"POD_NAMESPACE=" + gwNS}, bins.gateway, "run",
		"--kubeconfig", serviceAccountKubeconfig(t, gwNS, release), "--addr", addr, "--leader-elect")
	gw.waitListening(t, addr)
	waitOperatorReady(t, opName, "True", spec.ReasonRunning, "")
	w.create("held", map[string]any{"size": int64(1)})
	finalizer := spec.Group + "/" + opName
	w.waitFinalizer("held", finalizer)

	w.step("the hook's command, as the hook's ServiceAccount with the Job's arguments")
	var jobArgs []string
	for _, u := range hooks {
		if u.GetKind() == "Job" {
			var job batchv1.Job
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &job); err != nil {
				t.Fatal(err)
			}
			jobArgs = job.Spec.Template.Spec.Containers[0].Args
			continue
		}
		res, err := c.resource(u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := res.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create hook %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		t.Cleanup(func() { _ = res.Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}) })
	}
	if !slices.Contains(jobArgs, opName) {
		t.Fatalf("the hook Job's args %q do not name operator %s", jobArgs, opName)
	}
	out := runGatewayCommand(t, bins, append(slices.Clone(jobArgs), "--kubeconfig", serviceAccountKubeconfig(t, gwNS, release+"-uninstall"))...)
	if !strings.Contains(out, "waiting for WebhookOperator "+opName) || !strings.Contains(out, "1 WebhookOperator(s) removed") {
		t.Errorf("remove-operators printed:\n%s\nwant it to wait for %s and report it removed", out, opName)
	}
	if _, err := dynamicClient(t).Resource(engine.OperatorResource).Get(ctx, opName, metav1.GetOptions{}); !isGone(err) {
		t.Errorf("WebhookOperator %s after remove-operators: %v, want it gone", opName, err)
	}
	held, err := w.get(ctx, "held")
	if err != nil || slices.Contains(held.GetFinalizers(), finalizer) {
		t.Errorf("Memcached held after remove-operators: %v, finalizers %v; want it without %s", err, finalizersOf(held), finalizer)
	}

	w.step("helm uninstall runs the hook (kwok completes its Job) and leaves nothing of the release")
	helm(t, "uninstall", release, "--namespace", gwNS, "--wait")
	gw.stop(t)
	c.waitObjects(t, hooks, false)
}

func finalizersOf(u *unstructured.Unstructured) []string {
	if u == nil {
		return nil
	}
	return u.GetFinalizers()
}
