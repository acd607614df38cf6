package charts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/opgate/opgate/internal/testenv"
)

// install.md allows leaderElection.enabled=false with one replica only,
// since unelected replicas would all act. Left to the API server, the
// strategy is RollingUpdate 25%/25%: with one replica the Deployment
// controller surges one new pod (maxSurge rounds up) and keeps the old one
// (maxUnavailable rounds down to 0) until the new one is ready, so two
// unelected gateways would act at once during every helm upgrade or
// rollout restart.
func TestChartUnelectedSingleReplicaNeverRunsTwoPodsDuringARollout(t *testing.T) {
	var d appsv1.Deployment
	find(t, render(t, "--set", "leaderElection.enabled=false", "--set", "replicaCount=1"), "Deployment", "rel-opgate", &d)
	kube := kubernetes.NewForConfigOrDie(testenv.StartForTest(t).Config)
	ctx := context.Background()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ops"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := kube.AppsV1().Deployments("ops").Create(ctx, &d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := got.Spec.Strategy
	if s.Type == appsv1.RecreateDeploymentStrategyType {
		return
	}
	replicas := int(*got.Spec.Replicas)
	// As the Deployment controller resolves them (deploymentutil.ResolveFenceposts).
	surge, _ := intstr.GetScaledValueFromIntOrPercent(s.RollingUpdate.MaxSurge, replicas, true)
	unavailable, _ := intstr.GetScaledValueFromIntOrPercent(s.RollingUpdate.MaxUnavailable, replicas, false)
	if surge > 0 {
		t.Errorf("leaderElection.enabled=false, replicaCount=1: the API server stored strategy %s maxSurge=%s maxUnavailable=%s: a rollout runs %d unelected gateways at once (%d unavailable allowed)",
			s.Type, s.RollingUpdate.MaxSurge.String(), s.RollingUpdate.MaxUnavailable.String(), replicas+surge, unavailable)
	}
}

// release is one step of a release's life: helm install (the first) or
// helm upgrade with args, and the strategy the stored Deployment has then.
type release struct {
	args []string
	want appsv1.DeploymentStrategyType
}

const (
	rolling  = appsv1.RollingUpdateDeploymentStrategyType
	recreate = appsv1.RecreateDeploymentStrategyType
)

// An upgrade that changes the election (the Lease's name or namespace, or
// election turned on) would, rolling, start new pods that take a Lease
// nobody holds while the old leader renews the old one: two leaders, every
// handler called twice. The chart sees the installed Deployment (lookup)
// and stops the old pods first for that upgrade only; the next upgrade
// rolls again, standbys taking over. Through helm itself against a real
// kube-apiserver: lookup finds nothing under helm template, and whether
// Helm's patch can switch a stored strategy is the API server's to say.
func TestChartUpgradeThatChangesTheElectionStopsTheOldPodsFirst(t *testing.T) {
	checkReleaseHistories(t, "r", []releaseHistory{
		{"lease renamed", []release{
			{nil, rolling},
			{[]string{"--set", "leaderElection.leaseName=opgate-v2"}, recreate},
			{[]string{"--set", "leaderElection.leaseName=opgate-v2", "--set", "gateway.logLevel=debug"}, rolling},
		}},
		{"election turned on", []release{
			{[]string{"--set", "leaderElection.enabled=false", "--set", "replicaCount=1"}, recreate},
			{[]string{"--set", "replicaCount=1"}, recreate},
			{[]string{"--set", "replicaCount=2"}, rolling},
		}},
		{"lease namespace moved by extraArgs", []release{
			{nil, rolling},
			{[]string{"--set", "gateway.extraArgs={--leader-election-namespace=elsewhere}"}, recreate},
		}},
		{"election unchanged", []release{
			{nil, rolling},
			{[]string{"--set", "gateway.logLevel=debug"}, rolling},
		}},
	}, "elsewhere")
}

// releaseHistory is a release's install and upgrades, in order.
type releaseHistory struct {
	name  string
	steps []release
}

// checkReleaseHistories plays each history as a release of its own,
// named prefix and its index, in a namespace of its own, against one real
// kube-apiserver (checkReleases). namespaces are created first: those a
// history elects in (the chart puts the Lease's Role there, so they must
// exist, as a Secret namespace must).
func checkReleaseHistories(t *testing.T, prefix string, histories []releaseHistory, namespaces ...string) {
	t.Helper()
	env := testenv.StartForTest(t)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	kubeconfig := writeKubeConfig(t, env)
	for _, ns := range namespaces {
		if _, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range histories {
		t.Run(h.name, func(t *testing.T) {
			checkReleases(t, kube, kubeconfig, fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("ops-%s%d", prefix, i), h.steps)
		})
	}
}

// checkReleases installs release name in ns with the first step's
// arguments, upgrades it with each next step's, and checks the strategy
// the API server stored for the gateway's Deployment after each.
func checkReleases(t *testing.T, kube kubernetes.Interface, kubeconfig, name, ns string, steps []release) {
	t.Helper()
	for n, step := range steps {
		verb := "upgrade"
		if n == 0 {
			verb = "install"
		}
		args := append([]string{verb, name, chartDir, "--namespace", ns, "--create-namespace", "--skip-crds", "--kubeconfig", kubeconfig}, step.args...)
		if out, err := helm(t, args...); err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
		d, err := kube.AppsV1().Deployments(ns).Get(context.Background(), name+"-opgate", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Spec.Strategy.Type; got != step.want {
			t.Errorf("after helm %s %v: strategy %s, want %s (args %q)", verb, step.args, got, step.want, d.Spec.Template.Spec.Containers[0].Args)
		}
	}
}

// writeKubeConfig writes a kubeconfig of env's administrator for helm.
func writeKubeConfig(t *testing.T, env *testenv.Env) string {
	t.Helper()
	data, err := env.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The gateway's flags are pflag's: a string flag takes its value after "="
// or as the next argument ("--leader-election-namespace", "a"), the last of
// a repeated flag wins, and --leader-elect is a bool (--leader-elect=true is
// --leader-elect). The chart must compare the Lease the gateway will use,
// not how the arguments spell it: a Lease moved by a separate value
// argument stops the old pods first (else two leaders), and the same Lease
// spelled otherwise still rolls (else a needless outage).
func TestChartUpgradeComparesTheLeaseTheGatewayParsesNotItsSpelling(t *testing.T) {
	checkReleaseHistories(t, "s", []releaseHistory{
		{"lease namespace moved by a separate value argument", []release{
			{[]string{"--set", "gateway.extraArgs={--leader-election-namespace,lease-a}"}, rolling},
			{[]string{"--set", "gateway.extraArgs={--leader-election-namespace,lease-b}"}, recreate},
		}},
		{"lease renamed by a separate value argument", []release{
			{[]string{"--set", "gateway.extraArgs={--leader-election-name,lease-a}"}, rolling},
			{[]string{"--set", "gateway.extraArgs={--leader-election-name,lease-b}"}, recreate},
		}},
		{"the last of a repeated flag moves the lease", []release{
			{[]string{"--set", "gateway.extraArgs={--leader-election-name=a,--leader-election-name=b}"}, rolling},
			{[]string{"--set", "gateway.extraArgs={--leader-election-name=b,--leader-election-name=a}"}, recreate},
		}},
		{"election turned off in extraArgs", []release{
			{[]string{"--set", "replicaCount=1"}, rolling},
			{[]string{"--set", "replicaCount=1", "--set", "gateway.extraArgs={--leader-elect=false}"}, recreate},
			{[]string{"--set", "replicaCount=1", "--set", "gateway.extraArgs={--leader-elect=false}", "--set", "gateway.logLevel=debug"}, recreate},
		}},
		{"--leader-elect=true is --leader-elect", []release{
			{nil, rolling},
			{[]string{"--set", "gateway.extraArgs={--leader-elect=true}"}, rolling},
		}},
		{"lease name moved from extraArgs to leaderElection.leaseName", []release{
			{[]string{"--set", "gateway.extraArgs={--leader-election-name,opgate-v2}"}, rolling},
			{[]string{"--set", "leaderElection.leaseName=opgate-v2"}, rolling},
		}},
		{"lease namespace written as the release's own", []release{
			{nil, rolling},
			{[]string{"--set", "gateway.extraArgs={--leader-election-namespace=ops-s6}"}, rolling},
		}},
	}, "lease-a", "lease-b")
}
