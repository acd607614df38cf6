package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/internal/localcluster"
)

// An operator installed through the chart's `operators` value, its kinds
// granted through rbac.rules (what `gateway rbac --values` prints for it).
// The user retires it: drops it from `operators` and, since no operator
// watches Widgets any more, its rules from rbac.rules, in one helm upgrade.
// Helm updates the ClusterRole first and deletes the WebhookOperator last,
// so without more the gateway would be asked to release the Widgets after
// it lost the right to: the WebhookOperator would stay Terminating, the
// Widgets would keep its finalizer. The chart's pre-upgrade hook removes
// the retired operator first, while the old rules hold. Through helm
// itself (the hook is found with lookup, which only a real upgrade runs);
// envtest runs no Jobs, so the test plays the Job controller (runHookJobs).
func TestChartUpgradeRetiringAnOperatorWithItsRulesReleasesItsObjects(t *testing.T) {
	relNS := newNamespace(t)
	wns := newNamespace(t)
	h := newHandler(t, ok(nil))
	keptNS := newNamespace(t)
	suffix := time.Now().UnixNano() % 100000
	name := fmt.Sprintf("retired-%d", suffix)
	kept := fmt.Sprintf("kept-%d", suffix)
	rel := fmt.Sprintf("retire%d", suffix) // cluster-scoped objects are named after it: one per run
	admin := adminKubeconfig(t)
	gateway := buildGateway(t)
	operator := `
  - name: %s
    spec:
      watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
      handler: {url: %q}
      callbacks: [{id: create, events: [create]}, {id: cleanup, events: [delete]}]
`
	before := writeValues(t, `
rbac:
  rules:
    - {apiGroups: [test.opgate.dev], resources: [widgets], verbs: [get, list, watch, patch, update]}
    - {apiGroups: [test.opgate.dev], resources: [widgets/status], verbs: [get, patch, update]}
    - {apiGroups: [test.opgate.dev], resources: [widgets/finalizers], verbs: [update]}
operators:`+fmt.Sprintf(operator, name, wns, h.URL)+fmt.Sprintf(operator, kept, keptNS, h.URL))
	// What is left: the other operator, watching nothing it may read now.
	after := writeValues(t, "operators:"+fmt.Sprintf(operator, kept, keptNS, h.URL))
	const chart = "../../charts/opgate"
	if out, err := runHelm(admin, "install", rel, chart, "-n", relNS, "--skip-crds", "-f", before); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = runHelm(admin, "uninstall", rel, "-n", relNS, "--no-hooks") })

	// The gateway as the chart's ServiceAccount.
	sa := rest.CopyConfig(cfg)
	sa.Impersonate = serviceAccount(relNS, rel+"-opgate")
	startGatewayWithConfig(t, sa, runner.Options{SecretNamespace: relNS})
	waitReady(t, name, "True/Running")
	createWidget(t, wns, "example", 1)
	eventually(t, 30*time.Second, func() error { return heldBy(t, wns, "example", name) })

	done := make(chan helmResult, 1)
	go func() {
		out, err := runHelm(admin, "upgrade", rel, chart, "-n", relNS, "--skip-crds", "--reset-values", "-f", after, "--timeout", "2m")
		done <- helmResult{out, err}
	}()
	jobs, res := runHookJobs(t, relNS, gateway, admin, done)
	if res.err != nil {
		t.Fatalf("helm upgrade: %v\n%s", res.err, res.out)
	}
	if !slices.ContainsFunc(jobs, func(j batchv1.Job) bool { return slices.Contains(j.Spec.Template.Spec.Containers[0].Args, name) }) {
		t.Errorf("helm upgrade ran no pre-upgrade hook Job naming the retired WebhookOperator %s (ran %d)", name, len(jobs))
	}
	eventually(t, 30*time.Second, func() error { return releasedBy(t, wns, "example", name) })
	waitOperatorGone(t, name)
	if op, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), kept, metav1.GetOptions{}); err != nil || op.GetDeletionTimestamp() != nil {
		t.Errorf("WebhookOperator %s, still in operators, after the upgrade: %v, want it kept", kept, err)
	}
	// Helm deletes a hook that succeeded: no ClusterRole left behind.
	for _, j := range jobs {
		if _, err := kube(t).RbacV1().ClusterRoles().Get(context.Background(), j.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("hook ClusterRole %s after the upgrade: %v, want it deleted", j.Name, err)
		}
	}
}

type helmResult struct {
	out string
	err error
}

// runHookJobs plays the Job controller and the kubelet, which envtest
// lacks, for the pre-upgrade hook Jobs helm creates in ns, until helm
// exits (done): it runs each Job's container as a local process (the
// gateway binary with the Job's args, as the Job's ServiceAccount) and
// marks the Job Complete or Failed by its exit, which is what helm waits
// for. It returns the Jobs it ran and helm's result.
func runHookJobs(t *testing.T, ns, gateway, admin string, done <-chan helmResult) ([]batchv1.Job, helmResult) {
	t.Helper()
	ctx := context.Background()
	seen := map[types.UID]bool{}
	var ran []batchv1.Job
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			return ran, res
		case <-tick.C:
		}
		list, err := kube(t).BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, job := range list.Items {
			if seen[job.UID] || !strings.Contains(job.Annotations["helm.sh/hook"], "pre-upgrade") {
				continue
			}
			seen[job.UID] = true
			ran = append(ran, job)
			pod := job.Spec.Template.Spec
			c := pod.Containers[0]
			if !slices.Equal(c.Command, []string{"/gateway"}) {
				t.Fatalf("hook Job %s runs %q, want /gateway", job.Name, c.Command)
			}
			cmd := exec.Command(gateway, append(slices.Clone(c.Args), "--kubeconfig", impersonatingKubeconfig(t, admin, ns, pod.ServiceAccountName))...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			runErr := cmd.Run()
			t.Logf("hook Job %s: gateway %s: %v\n%s", job.Name, strings.Join(c.Args, " "), runErr, out.String())
			if runErr != nil {
				t.Errorf("hook Job %s failed: %v\n%s", job.Name, runErr, out.String())
			}
			finishJob(t, &job, runErr == nil)
		}
	}
}

// finishJob writes the status the Job controller writes when its one pod
// succeeded or failed.
func finishJob(t *testing.T, job *batchv1.Job, succeeded bool) {
	t.Helper()
	now := metav1.Now()
	job.Status.StartTime = &now
	cond := func(typ batchv1.JobConditionType, reason string) batchv1.JobCondition {
		return batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, LastProbeTime: now, LastTransitionTime: now}
	}
	if succeeded {
		job.Status.Succeeded, job.Status.CompletionTime = 1, &now
		job.Status.Conditions = append(job.Status.Conditions, cond(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached), cond(batchv1.JobComplete, batchv1.JobReasonCompletionsReached))
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = append(job.Status.Conditions, cond(batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded), cond(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded))
	}
	if _, err := kube(t).BatchV1().Jobs(job.Namespace).UpdateStatus(context.Background(), job, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("mark hook Job %s finished: %v", job.Name, err)
	}
}

// serviceAccount impersonates the ServiceAccount ns/name, with the groups
// the API server gives its tokens.
func serviceAccount(ns, name string) rest.ImpersonationConfig {
	return rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", ns, name),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
}

// adminKubeconfig writes a kubeconfig of the control plane's administrator.
func adminKubeconfig(t *testing.T) string {
	t.Helper()
	data, err := testEnv.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// impersonatingKubeconfig writes the admin kubeconfig acting as the
// ServiceAccount ns/name: the ServiceAccount's rights, no more.
func impersonatingKubeconfig(t *testing.T, admin, ns, name string) string {
	t.Helper()
	c, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	as := serviceAccount(ns, name)
	for _, a := range c.AuthInfos {
		a.Impersonate, a.ImpersonateGroups = as.UserName, as.Groups
	}
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// buildGateway builds the gateway binary the hook Jobs' image runs.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/gateway")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gateway: %v\n%s", err, out)
	}
	return bin
}

// runHelm runs the helm binary `make tools` builds with kubeconfig.
func runHelm(kubeconfig string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(localcluster.DefaultBinDir(), "helm"), append(args, "--kubeconfig", kubeconfig)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func writeValues(t *testing.T, values string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
