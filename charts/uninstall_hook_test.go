package charts

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// withOperators are helm arguments listing two WebhookOperators in the
// chart's operators value.
var withOperators = []string{
	"--set", "operators[0].name=memcached", "--set", "operators[0].spec.watch.kind=Memcached",
	"--set", "operators[1].name=backup", "--set", "operators[1].spec.watch.kind=Backup",
}

// hookObjects are the rendered objects annotated as Helm hooks.
func hookObjects(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var hooks []*unstructured.Unstructured
	for _, u := range objs {
		if _, ok := u.GetAnnotations()["helm.sh/hook"]; ok {
			hooks = append(hooks, u)
		}
	}
	return hooks
}

// helm uninstall deletes the gateway's Deployment and RBAC before the
// chart's WebhookOperators (Helm deletes kinds it does not know last), so
// the gateway could never release them and their objects' finalizers. A
// pre-delete hook deletes them first and waits: a ServiceAccount, a
// ClusterRole allowing only list/watch and, by name, get/delete of the
// chart's WebhookOperators, its binding, all created before a Job that
// runs `gateway remove-operators` hardened as the gateway is.
func TestChartRemovesItsOperatorsBeforeUninstallingTheGateway(t *testing.T) {
	objs := render(t, withOperators...)
	hooks := hookObjects(objs)
	want := map[string]string{"ServiceAccount": "-10", "ClusterRole": "-10", "ClusterRoleBinding": "-10", "Job": "0"}
	var kinds []string
	for _, u := range hooks {
		kinds = append(kinds, u.GetKind())
		a := u.GetAnnotations()
		if u.GetName() != "rel-opgate-uninstall" || a["helm.sh/hook"] != "pre-delete" || a["helm.sh/hook-weight"] != want[u.GetKind()] ||
			a["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" {
			t.Errorf("hook %s %s: annotations %v, want pre-delete, weight %q, deleted before creation and on success", u.GetKind(), u.GetName(), a, want[u.GetKind()])
		}
	}
	slices.Sort(kinds)
	if wantKinds := []string{"ClusterRole", "ClusterRoleBinding", "Job", "ServiceAccount"}; !slices.Equal(kinds, wantKinds) {
		t.Fatalf("hooks rendered: %v, want %v", kinds, wantKinds)
	}

	var role rbacv1.ClusterRole
	find(t, hooks, "ClusterRole", "rel-opgate-uninstall", &role)
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"opgate.dev"}, Resources: []string{"webhookoperators"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"opgate.dev"}, Resources: []string{"webhookoperators"}, Verbs: []string{"get", "delete"}, ResourceNames: []string{"memcached", "backup"}},
	}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("hook ClusterRole rules:\n got %+v\nwant %+v", role.Rules, wantRules)
	}
	var binding rbacv1.ClusterRoleBinding
	find(t, hooks, "ClusterRoleBinding", "rel-opgate-uninstall", &binding)
	wantSubject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "rel-opgate-uninstall", Namespace: "ops"}}
	if binding.RoleRef.Name != "rel-opgate-uninstall" || !reflect.DeepEqual(binding.Subjects, wantSubject) {
		t.Errorf("hook binding: %s to %+v, want rel-opgate-uninstall to %+v", binding.RoleRef.Name, binding.Subjects, wantSubject)
	}

	var job batchv1.Job
	find(t, hooks, "Job", "rel-opgate-uninstall", &job)
	var d appsv1.Deployment
	find(t, objs, "Deployment", "rel-opgate", &d)
	pod, gw := job.Spec.Template.Spec, d.Spec.Template.Spec
	c := pod.Containers[0]
	wantArgs := []string{"remove-operators", "memcached", "backup", "-l", "app.kubernetes.io/instance=rel,app.kubernetes.io/managed-by=Helm", "--timeout=120s"}
	checks := []struct {
		what string
		ok   bool
	}{
		{"the hook's ServiceAccount", pod.ServiceAccountName == "rel-opgate-uninstall"},
		{"/gateway, not the image's `/gateway run`", slices.Equal(c.Command, []string{"/gateway"})},
		{"args " + strings.Join(wantArgs, " "), slices.Equal(c.Args, wantArgs)},
		{"the gateway's image", c.Image == gw.Containers[0].Image},
		{"the gateway's pod securityContext", reflect.DeepEqual(pod.SecurityContext, gw.SecurityContext)},
		{"the gateway's container securityContext", reflect.DeepEqual(c.SecurityContext, gw.Containers[0].SecurityContext)},
		{"restartPolicy Never", pod.RestartPolicy == corev1.RestartPolicyNever},
		{"one attempt", job.Spec.BackoffLimit != nil && *job.Spec.BackoffLimit == 0},
		{"a deadline past the command's own timeout", job.Spec.ActiveDeadlineSeconds != nil && *job.Spec.ActiveDeadlineSeconds > 120},
		{"resources", c.Resources.Requests.Memory().String() != "0" && c.Resources.Limits.Memory().String() != "0"},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("the hook Job lacks %s", ck.what)
		}
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if job.Spec.Template.Labels[k] == v {
			continue
		}
		return // the hook's pod is not one of the gateway's (its Service, its PodDisruptionBudget)
	}
	t.Errorf("the hook's pod labels %v match the gateway's selector %v", job.Spec.Template.Labels, d.Spec.Selector.MatchLabels)
}

// No hook without operators in the chart (nothing to remove: operators
// created with kubectl are the user's, deleted by the user), or when
// turned off; the timeout is the value's.
func TestChartUninstallHookFollowsItsValues(t *testing.T) {
	cases := []struct {
		name        string
		args        []string
		wantTimeout string // "": no hook
	}{
		{"no operators", nil, ""},
		{"disabled", append([]string{"--set", "uninstallHook.enabled=false"}, withOperators...), ""},
		{"timeout set", append([]string{"--set", "uninstallHook.timeoutSeconds=30"}, withOperators...), "--timeout=30s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hooks := hookObjects(render(t, tc.args...))
			if tc.wantTimeout == "" {
				if len(hooks) > 0 {
					t.Errorf("%d hooks rendered, want none", len(hooks))
				}
				return
			}
			var job batchv1.Job
			find(t, hooks, "Job", "rel-opgate-uninstall", &job)
			args := job.Spec.Template.Spec.Containers[0].Args
			if !slices.Contains(args, tc.wantTimeout) {
				t.Errorf("args %q lack %s", args, tc.wantTimeout)
			}
			if d := job.Spec.ActiveDeadlineSeconds; d == nil || *d <= 30 {
				t.Errorf("activeDeadlineSeconds %v, want more than 30", d)
			}
		})
	}
	for _, set := range []string{"uninstallHook.enable=true", "uninstallHook.timeoutSeconds=0", "uninstallHook.timeoutSeconds=" + strconv.Quote("2m")} {
		if _, err := helm(t, "template", "rel", chartDir, "--set", set); err == nil || !strings.Contains(err.Error(), "uninstallHook") {
			t.Errorf("helm template --set %s: err = %v, want one naming uninstallHook", set, err)
		}
	}
}
