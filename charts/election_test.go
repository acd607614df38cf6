package charts

import (
	"context"
	"fmt"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/opgate/opgate/internal/testenv"
)

// The gateway takes, renews and frees its Lease where it elects: the
// release namespace, or the one --leader-election-namespace in
// gateway.extraArgs names. Its ServiceAccount must be allowed there, or no
// replica ever leads and no operator runs. Asked of the real authorizer
// (SubjectAccessReviews) after a real helm install.
func TestChartGrantsTheLeaseInTheNamespaceTheGatewayElectsIn(t *testing.T) {
	env := testenv.StartForTest(t)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	kubeconfig := writeKubeConfig(t, env)
	ctx := context.Background()
	cases := []struct {
		name      string
		set       []string
		leaseNS   string
		leaseName string
	}{
		{"the release namespace by default", nil, "", "opgate-gateway"},
		{"moved by --leader-election-namespace=", []string{"--set", "gateway.extraArgs={--leader-election-namespace=leases-a}"}, "leases-a", "opgate-gateway"},
		{"moved by a separate value argument", []string{"--set", "gateway.extraArgs={--leader-election-namespace,leases-b}"}, "leases-b", "opgate-gateway"},
		{"moved and renamed", []string{"--set", "leaderElection.leaseName=gw", "--set", "gateway.extraArgs={--leader-election-namespace=leases-c}"}, "leases-c", "gw"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release, ns := fmt.Sprintf("l%d", i), fmt.Sprintf("ops-l%d", i)
			leaseNS := tc.leaseNS
			if leaseNS == "" {
				leaseNS = ns
			} else if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNS}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"install", release, chartDir, "--namespace", ns, "--create-namespace", "--skip-crds", "--kubeconfig", kubeconfig}, tc.set...)
			if out, err := helm(t, args...); err != nil {
				t.Fatalf("helm %v: %v\n%s", args, err, out)
			}
			d, err := kube.AppsV1().Deployments(ns).Get(ctx, release+"-opgate", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sa := d.Spec.Template.Spec.ServiceAccountName
			for _, verb := range []string{"get", "create", "update"} {
				sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User:   "system:serviceaccount:" + ns + ":" + sa,
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: leaseNS, Verb: verb, Group: "coordination.k8s.io", Resource: "leases", Name: tc.leaseName,
					},
				}}
				got, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if !got.Status.Allowed {
					t.Errorf("gateway args %q: ServiceAccount %s/%s may not %s the Lease %s/%s it elects with (%s)",
						d.Spec.Template.Spec.Containers[0].Args, ns, sa, verb, leaseNS, tc.leaseName, got.Status.Reason)
				}
			}
		})
	}
}

// The API server refuses a Lease whose name is no DNS-1123 subdomain, so a
// gateway given one never leads; and since a changed leaseName renders
// Recreate, the upgrade bringing the typo first stops the working gateway.
// The chart refuses exactly the names Kubernetes refuses.
func TestChartRefusesALeaseNameKubernetesRefuses(t *testing.T) {
	for _, name := range []string{
		"opgate-gateway", "gw.v2", "0gw", strings.Repeat("a", 253),
		"Opgate_Gateway", "Opgate", "gw_1", "-gw", "gw-", "gw..v2", ".gw", strings.Repeat("a", 254),
	} {
		t.Run(fmt.Sprintf("%.20s (%d)", name, len(name)), func(t *testing.T) {
			valid := len(validation.IsDNS1123Subdomain(name)) == 0
			out, err := helm(t, "template", "rel", chartDir, "--namespace", "ops", "--set-string", "leaderElection.leaseName="+name)
			switch {
			case valid && err != nil:
				t.Errorf("leaderElection.leaseName %q, a valid Lease name: %v", name, err)
			case valid && !strings.Contains(out, "--leader-election-name="+name):
				t.Errorf("leaderElection.leaseName %q: not rendered as --leader-election-name", name)
			case !valid && (err == nil || !strings.Contains(err.Error(), "leaseName")):
				t.Errorf("leaderElection.leaseName %q, refused by the API server (%s): err = %v, want one naming leaseName",
					name, validation.IsDNS1123Subdomain(name), err)
			}
		})
	}
}

// An upgrade that renames the gateway's Deployment (fullnameOverride or
// nameOverride) makes Helm create the new Deployment, whose pods start at
// once, and delete the old one only at the end: unless both run elected
// under the same Lease, two gateways act at once (Recreate and the lookup of
// the installed Deployment see the new name only). The chart refuses such an
// upgrade while the old Deployment still has replicas, naming it and the
// way out, and creates nothing; scaled to 0 first, the rename goes through.
func TestChartRefusesARenameThatWouldRunTwoActingGateways(t *testing.T) {
	env := testenv.StartForTest(t)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	kubeconfig := writeKubeConfig(t, env)
	ctx := context.Background()
	unelected := []string{"--set", "leaderElection.enabled=false", "--set", "replicaCount=1"}
	cases := []struct {
		name             string
		install, upgrade []string
		oldName, newName string // the Deployment's; %s in them and in the args is the release name
		scaleOldToZero   bool
		wantRefused      bool
	}{
		{"unelected, fullnameOverride changed",
			append([]string{"--set", "fullnameOverride=%s-a"}, unelected...), append([]string{"--set", "fullnameOverride=%s-b"}, unelected...),
			"%s-a", "%s-b", false, true},
		{"unelected, nameOverride changed",
			append([]string{"--set", "nameOverride=gw"}, unelected...), append([]string{"--set", "nameOverride=gateway"}, unelected...),
			"%s-gw", "%s-gateway", false, true},
		{"unelected, the old Deployment scaled to 0 first",
			append([]string{"--set", "fullnameOverride=%s-a"}, unelected...), append([]string{"--set", "fullnameOverride=%s-b"}, unelected...),
			"%s-a", "%s-b", true, false},
		{"election turned off with the rename",
			[]string{"--set", "fullnameOverride=%s-a", "--set", "replicaCount=1"}, append([]string{"--set", "fullnameOverride=%s-b"}, unelected...),
			"%s-a", "%s-b", false, true},
		{"election turned on with the rename",
			append([]string{"--set", "fullnameOverride=%s-a"}, unelected...), []string{"--set", "fullnameOverride=%s-b", "--set", "replicaCount=1"},
			"%s-a", "%s-b", false, true},
		{"elected, the Lease renamed with the Deployment",
			[]string{"--set", "fullnameOverride=%s-a"}, []string{"--set", "fullnameOverride=%s-b", "--set", "leaderElection.leaseName=%s-b"},
			"%s-a", "%s-b", false, true},
		{"elected under the same Lease: the new pods stand by",
			[]string{"--set", "fullnameOverride=%s-a"}, []string{"--set", "fullnameOverride=%s-b"},
			"%s-a", "%s-b", false, false},
		{"unelected, name unchanged",
			unelected, append([]string{"--set", "gateway.logLevel=debug"}, unelected...),
			"%s-opgate", "%s-opgate", false, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release, ns := fmt.Sprintf("n%d", i), fmt.Sprintf("ops-n%d", i)
			// Cluster-scoped objects (the ClusterRole) are named after the
			// Deployment: each release needs names of its own.
			named := func(s string) string { return strings.ReplaceAll(s, "%s", release) }
			oldName, newName := named(tc.oldName), named(tc.newName)
			args := []string{"install", release, chartDir, "--namespace", ns, "--create-namespace", "--skip-crds", "--kubeconfig", kubeconfig}
			for _, a := range tc.install {
				args = append(args, named(a))
			}
			if out, err := helm(t, args...); err != nil {
				t.Fatalf("helm %v: %v\n%s", args, err, out)
			}
			if tc.scaleOldToZero {
				scale, err := kube.AppsV1().Deployments(ns).GetScale(ctx, oldName, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				scale.Spec.Replicas = 0
				if _, err := kube.AppsV1().Deployments(ns).UpdateScale(ctx, oldName, scale, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			args = []string{"upgrade", release, chartDir, "--namespace", ns, "--skip-crds", "--kubeconfig", kubeconfig}
			for _, a := range tc.upgrade {
				args = append(args, named(a))
			}
			out, err := helm(t, args...)
			if !tc.wantRefused {
				if err != nil {
					t.Fatalf("helm %v: %v\n%s", args, err, out)
				}
				if _, err := kube.AppsV1().Deployments(ns).Get(ctx, newName, metav1.GetOptions{}); err != nil {
					t.Errorf("after helm %v: %v", args, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "Deployment "+ns+"/"+oldName) || !strings.Contains(err.Error(), "--replicas=0") {
				t.Errorf("helm %v, renaming Deployment %s to %s: err = %v, want a refusal naming Deployment %s/%s and how to scale it to 0",
					args, oldName, newName, err, ns, oldName)
			}
			if _, err := kube.AppsV1().Deployments(ns).Get(ctx, newName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("after the refused upgrade, Deployment %s: err = %v, want it never created", newName, err)
			}
		})
	}
}
