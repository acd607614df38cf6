package charts

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/internal/testenv"
)

// operatorArgs are helm arguments listing WebhookOperators of these names
// in the chart's operators value; pinned ones annotated
// helm.sh/resource-policy: keep.
func operatorArgs(t *testing.T, names []string, pinned ...string) []string {
	t.Helper()
	var ops []any
	for _, n := range names {
		op := map[string]any{"name": n, "spec": operatorSpec}
		if slices.Contains(pinned, n) {
			op["annotations"] = map[string]any{"helm.sh/resource-policy": "keep"}
		}
		ops = append(ops, op)
	}
	data, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--set-json", "operators=" + string(data)}
}

// operatorSpec is a valid WebhookOperator spec.
var operatorSpec = map[string]any{
	"watch":     map[string]any{"apiVersion": "v1", "kind": "ConfigMap"},
	"handler":   map[string]any{"url": "http://127.0.0.1:1"},
	"callbacks": []any{map[string]any{"id": "c", "events": []any{"create"}}},
}

// upgradeHooks renders `helm upgrade --dry-run=server` of release rel in
// ns (lookup sees the cluster, as in the upgrade itself) and returns its
// pre-upgrade hooks and its other objects.
func upgradeHooks(t *testing.T, kubeconfig, rel, ns string, args ...string) (hooks, objs []*unstructured.Unstructured) {
	t.Helper()
	out, err := helm(t, append([]string{"upgrade", rel, chartDir, "--namespace", ns, "--skip-crds", "--dry-run=server", "--kubeconfig", kubeconfig}, args...)...)
	if err != nil {
		t.Fatalf("helm upgrade --dry-run=server %q: %v", args, err)
	}
	head, manifest, ok := strings.Cut(out, "\nMANIFEST:\n")
	if !ok {
		t.Fatalf("helm upgrade --dry-run printed no MANIFEST:\n%s", out)
	}
	_, hookPart, _ := strings.Cut(head, "\nHOOKS:\n") // none printed without hooks
	manifest, _, _ = strings.Cut(manifest, "\nNOTES:\n")
	for _, u := range decode(t, hookPart) {
		if strings.Contains(u.GetAnnotations()["helm.sh/hook"], "pre-upgrade") {
			hooks = append(hooks, u)
		}
	}
	return hooks, decode(t, manifest)
}

// A helm upgrade that drops a WebhookOperator from `operators` deletes it
// after updating the RBAC, so the gateway may have lost the rights to
// release its objects by then. A pre-upgrade hook removes the dropped ones
// first: found with lookup, they are exactly the WebhookOperators Helm
// recorded as this release's (its labels and its meta.helm.sh annotations)
// that the new values no longer list, not one kept by
// helm.sh/resource-policy (Helm leaves those), not one already deleted
// (deleting it again would only make the upgrade that may fix it wait),
// not one of another release or made with kubectl. Its ClusterRole may
// get and delete those names only.
func TestChartUpgradeRemovesTheOperatorsItDropsFirst(t *testing.T) {
	env := testenv.StartForTest(t, "../crds")
	kubeconfig := writeKubeConfig(t, env)
	const rel, ns = "rel", "ops"
	installed := operatorArgs(t, []string{"alpha", "beta", "gamma", "pinned"}, "pinned")
	if out, err := helm(t, append([]string{"install", rel, chartDir, "--namespace", ns, "--create-namespace", "--skip-crds", "--kubeconfig", kubeconfig}, installed...)...); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	ops := dynamic.NewForConfigOrDie(env.Config).Resource(engine.OperatorResource)
	ctx := context.Background()
	released := map[string]string{"app.kubernetes.io/instance": rel, "app.kubernetes.io/managed-by": "Helm"}
	others := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		finalizers  []string
		deleted     bool
	}{
		{name: "by-kubectl"},
		{name: "same-name-elsewhere", labels: released, annotations: map[string]string{"meta.helm.sh/release-name": rel, "meta.helm.sh/release-namespace": "elsewhere"}},
		{name: "leaving", labels: released, annotations: map[string]string{"meta.helm.sh/release-name": rel, "meta.helm.sh/release-namespace": ns}, finalizers: []string{"test.opgate.dev/hold"}, deleted: true},
	}
	for _, o := range others {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "opgate.dev/v1alpha1", "kind": "WebhookOperator",
			"spec": operatorSpec,
		}}
		u.SetName(o.name)
		u.SetLabels(o.labels)
		u.SetAnnotations(o.annotations)
		u.SetFinalizers(o.finalizers)
		if _, err := ops.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create WebhookOperator %s: %v", o.name, err)
		}
		if o.deleted {
			if err := ops.Delete(ctx, o.name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_, _ = ops.Patch(context.Background(), o.name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
			})
		}
	}

	cases := []struct {
		name        string
		args        []string
		wantRetired []string // nil: no hook
		wantTimeout int64
	}{
		{"one dropped", operatorArgs(t, []string{"alpha", "gamma", "pinned"}, "pinned"), []string{"beta"}, 120},
		{"none dropped", installed, nil, 0},
		{"all dropped", []string{"--set", "operators=null"}, []string{"alpha", "beta", "gamma"}, 120},
		{"one renamed", operatorArgs(t, []string{"alpha2", "beta", "gamma", "pinned"}, "pinned"), []string{"alpha"}, 120},
		{"timeout set", append([]string{"--set", "uninstallHook.timeoutSeconds=30"}, operatorArgs(t, []string{"alpha", "beta"})...), []string{"gamma"}, 30},
		{"hooks disabled", []string{"--set", "operators=null", "--set", "uninstallHook.enabled=false"}, nil, 0},
		{"values of an older release", []string{"--set", "operators=null", "--set", "uninstallHook=null"}, []string{"alpha", "beta", "gamma"}, 120},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hooks, objs := upgradeHooks(t, kubeconfig, rel, ns, tc.args...)
			if tc.wantRetired == nil {
				if len(hooks) > 0 {
					t.Errorf("%d pre-upgrade hooks rendered (%s %s, ...), want none", len(hooks), hooks[0].GetKind(), hooks[0].GetName())
				}
				return
			}
			checkRetireHook(t, hooks, objs, tc.wantRetired, tc.wantTimeout)
		})
	}

	// lookup finds nothing outside an install or upgrade: helm template
	// (Argo CD, `helm template | kubectl apply`) renders no hook.
	for _, args := range [][]string{{"--is-upgrade"}, {"--is-upgrade", "--api-versions", "opgate.dev/v1alpha1/WebhookOperator"}} {
		if hooks := hookObjects(render(t, append(args, "--set", "operators=null", "--kubeconfig", kubeconfig)...)); len(hooks) > 0 {
			t.Errorf("helm template %q: %d hooks rendered, want none", args, len(hooks))
		}
	}
}

// checkRetireHook checks the pre-upgrade hooks are a ServiceAccount, a
// ClusterRole allowing list/watch and get/delete of exactly the retired
// operators, its binding, and a Job running `gateway remove-operators` on
// them, hardened as the gateway is.
func checkRetireHook(t *testing.T, hooks, objs []*unstructured.Unstructured, retired []string, timeout int64) {
	t.Helper()
	const name = "rel-opgate-retire"
	want := map[string]string{"ServiceAccount": "-10", "ClusterRole": "-10", "ClusterRoleBinding": "-10", "Job": "0"}
	var kinds []string
	for _, u := range hooks {
		kinds = append(kinds, u.GetKind())
		a := u.GetAnnotations()
		if u.GetName() != name || a["helm.sh/hook"] != "pre-upgrade" || a["helm.sh/hook-weight"] != want[u.GetKind()] ||
			a["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" {
			t.Errorf("hook %s %s: annotations %v, want named %s, pre-upgrade, weight %q, deleted before creation and on success", u.GetKind(), u.GetName(), a, name, want[u.GetKind()])
		}
	}
	slices.Sort(kinds)
	if wantKinds := []string{"ClusterRole", "ClusterRoleBinding", "Job", "ServiceAccount"}; !slices.Equal(kinds, wantKinds) {
		t.Fatalf("pre-upgrade hooks rendered: %v, want %v", kinds, wantKinds)
	}
	var role rbacv1.ClusterRole
	find(t, hooks, "ClusterRole", name, &role)
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"opgate.dev"}, Resources: []string{"webhookoperators"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"opgate.dev"}, Resources: []string{"webhookoperators"}, Verbs: []string{"get", "delete"}, ResourceNames: retired},
	}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("hook ClusterRole rules:\n got %+v\nwant %+v", role.Rules, wantRules)
	}
	var binding rbacv1.ClusterRoleBinding
	find(t, hooks, "ClusterRoleBinding", name, &binding)
	wantSubject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: "ops"}}
	if binding.RoleRef.Name != name || !reflect.DeepEqual(binding.Subjects, wantSubject) {
		t.Errorf("hook binding: %s to %+v, want %s to %+v", binding.RoleRef.Name, binding.Subjects, name, wantSubject)
	}
	var job batchv1.Job
	find(t, hooks, "Job", name, &job)
	var d appsv1.Deployment
	find(t, objs, "Deployment", "rel-opgate", &d)
	pod, gw := job.Spec.Template.Spec, d.Spec.Template.Spec
	c := pod.Containers[0]
	wantArgs := append(append([]string{"remove-operators"}, retired...), "-l", "app.kubernetes.io/instance=rel,app.kubernetes.io/managed-by=Helm", fmt.Sprintf("--timeout=%ds", timeout))
	checks := []struct {
		what string
		ok   bool
	}{
		{"the hook's ServiceAccount", pod.ServiceAccountName == name},
		{"/gateway, not the image's `/gateway run`", slices.Equal(c.Command, []string{"/gateway"})},
		{"args " + strings.Join(wantArgs, " ") + " (got " + strings.Join(c.Args, " ") + ")", slices.Equal(c.Args, wantArgs)},
		{"the gateway's image", c.Image == gw.Containers[0].Image},
		{"the gateway's pod securityContext", reflect.DeepEqual(pod.SecurityContext, gw.SecurityContext)},
		{"the gateway's container securityContext", reflect.DeepEqual(c.SecurityContext, gw.Containers[0].SecurityContext)},
		{"one attempt", job.Spec.BackoffLimit != nil && *job.Spec.BackoffLimit == 0},
		{"a deadline past the command's own timeout", job.Spec.ActiveDeadlineSeconds != nil && *job.Spec.ActiveDeadlineSeconds > timeout},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("the hook Job lacks %s", ck.what)
		}
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if job.Spec.Template.Labels[k] != v {
			return // the hook's pod is not one of the gateway's (its Service, its PodDisruptionBudget)
		}
	}
	t.Errorf("the hook's pod labels %v match the gateway's selector %v", job.Spec.Template.Labels, d.Spec.Selector.MatchLabels)
}
