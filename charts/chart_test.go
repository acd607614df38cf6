// Package charts tests the Helm chart in charts/opgate with the helm
// binary `make tools` builds: lint, render, schema, and that its CRD and
// base roles are the gateway's own, and (against a real kube-apiserver,
// envtest) that install.md's CRD upgrade applies over the CRD Helm created.
package charts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/rbac"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/internal/localcluster"
)

const chartDir = "opgate"

// helm runs the helm binary `make tools` builds (OPGATE_TOOLS_DIR/bin).
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(localcluster.DefaultBinDir(), "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no helm binary (%v): run `make tools`", err)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), errors.New(errOut.String() + err.Error())
	}
	return out.String(), nil
}

// render templates the chart with extra helm arguments and decodes it.
func render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", "rel", chartDir, "--namespace", "ops"}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	return decode(t, out)
}

// decode decodes helm template's output into its objects.
func decode(t *testing.T, out string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decode rendered chart: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			data, err := yaml.Marshal(u.Object)
			if err == nil {
				err = yaml.Unmarshal(data, into)
			}
			if err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("the chart renders no %s %s", kind, name)
}

func TestChartCRDIsTheGatewayCRD(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "crds", "opgate.dev_webhookoperators.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(chartDir, "crds", "opgate.dev_webhookoperators.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("charts/opgate/crds/opgate.dev_webhookoperators.yaml differs from crds/: run `make crds`")
	}
	var chart struct {
		Version     string            `json:"version"`
		Annotations map[string]string `json:"annotations"`
	}
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err == nil {
		err = yaml.Unmarshal(data, &chart)
	}
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(got)
	if digest := hex.EncodeToString(sum[:]); chart.Annotations["opgate.dev/crd-sha256"] != digest {
		t.Fatalf("the CRD changed but chart version %s still pins the old one: bump version in charts/opgate/Chart.yaml, set its opgate.dev/crd-sha256 annotation to %s and record both in %s", chart.Version, digest, crdVersionsFile)
	}
}

// crdVersionsFile records each chart version with the digest of the CRD it
// ships; entries are appended, never edited.
const crdVersionsFile = "crd-versions.yaml"

// A chart version ships one CRD: a changed CRD needs a new version, or
// users who upgrade the chart by version keep the old CRD (Helm never
// upgrades crds/). TestChartCRDIsTheGatewayCRD sees only the annotation,
// which can move without the version.
func TestChartVersionMovesWithItsCRD(t *testing.T) {
	var chart struct {
		Version string `json:"version"`
	}
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err == nil {
		err = yaml.Unmarshal(data, &chart)
	}
	if err != nil {
		t.Fatal(err)
	}
	crd, err := os.ReadFile(filepath.Join(chartDir, "crds", "opgate.dev_webhookoperators.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(crd)
	digest := hex.EncodeToString(sum[:])
	var released []struct {
		Version   string `json:"version"`
		CRDSHA256 string `json:"crdSHA256"`
	}
	data, err = os.ReadFile(crdVersionsFile)
	if err == nil {
		err = yaml.UnmarshalStrict(data, &released)
	}
	if err != nil {
		t.Fatalf("%s: %v", crdVersionsFile, err)
	}
	seen := map[string]bool{}
	for _, r := range released {
		if seen[r.Version] {
			t.Errorf("%s lists version %s twice: a released version ships one CRD", crdVersionsFile, r.Version)
		}
		seen[r.Version] = true
	}
	if len(released) == 0 || released[len(released)-1].Version != chart.Version {
		t.Fatalf("chart version %s is not the last entry of %s: append {version: %s, crdSHA256: %s}", chart.Version, crdVersionsFile, chart.Version, digest)
	}
	if last := released[len(released)-1]; last.CRDSHA256 != digest {
		t.Fatalf("the CRD's digest is %s, but %s records %s for chart version %s: bump version in charts/opgate/Chart.yaml and append the new version with this digest to %s",
			digest, crdVersionsFile, last.CRDSHA256, chart.Version, crdVersionsFile)
	}
}

func TestChartLintsClean(t *testing.T) {
	out, err := helm(t, "lint", "--strict", chartDir)
	if err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

func TestChartRefusesMistypedValues(t *testing.T) {
	cases := []struct{ set, want string }{
		{"replicaCont=3", "replicaCont"},
		{"gateway.logLevl=debug", "logLevl"},
		{"rbac.rule[0].verbs[0]=get", "rule"},
		{"rbac.rules[0].verb[0]=get", "verb"},
		{"serviceMonitor.enable=true", "enable"},
		{"gateway.logLevel=loud", "logLevel"},
		{"secretNamespace=Not_A_Namespace", "secretNamespace"},
		{"ui.enable=true", "enable"},
		{"ui.enabled=yes", "enabled"},
		// The gateway refuses a QPS below one query a minute (0 included);
		// the chart says so at install, not the pod at start.
		{"gateway.kubeAPIQPS=0", "kubeAPIQPS"},
	}
	for _, tc := range cases {
		t.Run(tc.set, func(t *testing.T) {
			_, err := helm(t, "template", "rel", chartDir, "--set", tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("helm template --set %s: err = %v, want one naming %q", tc.set, err, tc.want)
			}
		})
	}
}

// A QPS the gateway refuses (under one query a minute) is refused by the
// chart; one it takes, or a negative one (no limit), is rendered as given.
// --set reads 0.01 as a string: the values come as JSON, as a values file
// gives them.
func TestChartTakesTheKubeAPIQPSTheGatewayTakes(t *testing.T) {
	for _, tc := range []struct {
		qps  string
		want bool
	}{{"0.01", false}, {"0.0167", true}, {"0.5", true}, {"-1", true}} {
		out, err := helm(t, "template", "rel", chartDir, "--set-json", "gateway.kubeAPIQPS="+tc.qps)
		if tc.want && (err != nil || !strings.Contains(out, "--kube-api-qps="+tc.qps)) {
			t.Errorf("kubeAPIQPS %s: err %v, want --kube-api-qps=%s rendered", tc.qps, err, tc.qps)
		}
		if !tc.want && (err == nil || !strings.Contains(err.Error(), "kubeAPIQPS")) {
			t.Errorf("kubeAPIQPS %s: err %v, want a refusal naming kubeAPIQPS", tc.qps, err)
		}
	}
}

// `helm --set` passes a number that is no integer (0.5) as a string: the
// chart takes a numeric string as the number it spells and renders it
// unchanged, and holds it to the same floor (one query a minute, or
// negative); a string that is no number is refused naming the value.
func TestChartTakesAFractionalKubeAPIQPSFromSet(t *testing.T) {
	for _, tc := range []struct {
		qps  string
		want bool
	}{
		{"0.5", true}, {"0.0167", true}, {"-0.5", true}, {"2.5e2", true}, {"1000", true},
		{"0.01", false}, {"0.0", false}, {"fast", false}, {"0.5qps", false}, {"NaN", false},
	} {
		t.Run(tc.qps, func(t *testing.T) {
			out, err := helm(t, "template", "rel", chartDir, "--set", "gateway.kubeAPIQPS="+tc.qps)
			if tc.want && (err != nil || !strings.Contains(out, "--kube-api-qps="+tc.qps+"\n")) {
				t.Errorf("--set gateway.kubeAPIQPS=%s: err %v, want --kube-api-qps=%s rendered", tc.qps, err, tc.qps)
			}
			if !tc.want && (err == nil || !strings.Contains(err.Error(), "kubeAPIQPS")) {
				t.Errorf("--set gateway.kubeAPIQPS=%s: err %v, want a refusal naming kubeAPIQPS", tc.qps, err)
			}
		})
	}
}

func TestChartBaseRolesAreTheGatewaysOwnRules(t *testing.T) {
	objs := render(t)
	base := rbac.BaseRules()
	var cr rbacv1.ClusterRole
	find(t, objs, "ClusterRole", "rel-opgate", &cr)
	if !reflect.DeepEqual(cr.Rules, base.Cluster) {
		t.Errorf("base ClusterRole rules:\n got %+v\nwant %+v (gateway/rbac.BaseRules)", cr.Rules, base.Cluster)
	}
	var role rbacv1.Role
	find(t, objs, "Role", "rel-opgate", &role)
	if !reflect.DeepEqual(role.Rules, base.Namespace) || role.Namespace != "ops" {
		t.Errorf("base Role in %q rules:\n got %+v\nwant %+v in ops", role.Namespace, role.Rules, base.Namespace)
	}
	var secrets rbacv1.Role
	find(t, objs, "Role", "rel-opgate-secrets", &secrets)
	if !reflect.DeepEqual(secrets.Rules, base.Secrets) {
		t.Errorf("Secrets Role rules:\n got %+v\nwant %+v", secrets.Rules, base.Secrets)
	}
}

// Helm keeps each release's rendered values in Secrets of the release
// namespace: secretNamespace moves the gateway's Secret access (its
// --secret-namespace and the Role reading Secrets) to a namespace of its
// own, and nothing else grants Secrets.
func TestChartReadsSecretsOnlyInTheSecretNamespace(t *testing.T) {
	cases := []struct{ name, set, want string }{
		{"default: the release namespace", "", "ops"},
		{"a dedicated namespace", "secretNamespace=handler-secrets", "handler-secrets"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.set != "" {
				args = []string{"--set", tc.set}
			}
			objs := render(t, args...)
			var d appsv1.Deployment
			find(t, objs, "Deployment", "rel-opgate", &d)
			if arg := "--secret-namespace=" + tc.want; !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, arg) {
				t.Errorf("gateway args %q lack %s", d.Spec.Template.Spec.Containers[0].Args, arg)
			}
			var binding rbacv1.RoleBinding
			find(t, objs, "RoleBinding", "rel-opgate-secrets", &binding)
			if binding.Namespace != tc.want || binding.RoleRef.Name != "rel-opgate-secrets" {
				t.Errorf("Secrets RoleBinding in %q to %q, want in %q", binding.Namespace, binding.RoleRef.Name, tc.want)
			}
			for _, u := range objs {
				var r rbacv1.Role
				if u.GetKind() != "Role" && u.GetKind() != "ClusterRole" {
					continue
				}
				find(t, []*unstructured.Unstructured{u}, u.GetKind(), u.GetName(), &r)
				for _, rule := range r.Rules {
					if slices.Contains(rule.Resources, "secrets") && (u.GetKind() != "Role" || u.GetNamespace() != tc.want) {
						t.Errorf("%s %s/%s grants Secrets; only a Role in %s may", u.GetKind(), u.GetNamespace(), u.GetName(), tc.want)
					}
				}
			}
		})
	}
}

func TestChartRunsTwoElectedHardenedReplicas(t *testing.T) {
	var d appsv1.Deployment
	find(t, render(t), "Deployment", "rel-opgate", &d)
	c := d.Spec.Template.Spec.Containers[0]
	psc, sc := d.Spec.Template.Spec.SecurityContext, c.SecurityContext
	checks := []struct {
		what string
		ok   bool
	}{
		{"2 replicas", d.Spec.Replicas != nil && *d.Spec.Replicas == 2},
		{"--leader-elect", slices.Contains(c.Args, "--leader-elect")},
		{"POD_NAMESPACE from the downward API", len(c.Env) > 0 && c.Env[0].Name == "POD_NAMESPACE" && c.Env[0].ValueFrom.FieldRef.FieldPath == "metadata.namespace"},
		{"GOMEMLIMIT from the memory limit", slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
		})},
		{"liveness on /healthz", c.LivenessProbe != nil && c.LivenessProbe.HTTPGet.Path == "/healthz"},
		{"readiness on /readyz", c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet.Path == "/readyz"},
		{"metrics port", len(c.Ports) == 1 && c.Ports[0].Name == "metrics"},
		{"resources", c.Resources.Requests.Memory().String() != "0"},
		{"non-root 65532", psc.RunAsNonRoot != nil && *psc.RunAsNonRoot && psc.RunAsUser != nil && *psc.RunAsUser == 65532},
		{"seccomp RuntimeDefault", psc.SeccompProfile != nil && psc.SeccompProfile.Type == "RuntimeDefault"},
		{"read-only root", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
		{"drop ALL", sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"})},
		{"no privilege escalation", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("the Deployment lacks %s", c.what)
		}
	}
}

// The chart passes the API client limits and the web view's flag only as
// set: by default the binary's own limits hold, and the web view, which
// shows every operator's objects and handler errors to whoever reaches the
// metrics Service, is off.
func TestChartLeavesClientLimitsToTheBinaryAndTheWebViewOff(t *testing.T) {
	cases := []struct {
		name string
		set  []string
		want []string
		not  []string
	}{
		{"defaults", nil, []string{"--ui=false"}, []string{"--kube-api-qps", "--kube-api-burst"}},
		{"limits set", []string{"--set", "gateway.kubeAPIQPS=50", "--set", "gateway.kubeAPIBurst=80"},
			[]string{"--kube-api-qps=50", "--kube-api-burst=80"}, nil},
		{"web view enabled", []string{"--set", "ui.enabled=true"}, nil, []string{"--ui"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d appsv1.Deployment
			find(t, render(t, tc.set...), "Deployment", "rel-opgate", &d)
			args := d.Spec.Template.Spec.Containers[0].Args
			for _, w := range tc.want {
				if !slices.Contains(args, w) {
					t.Errorf("args %q lack %s", args, w)
				}
			}
			for _, n := range tc.not {
				for _, a := range args {
					if strings.HasPrefix(a, n) {
						t.Errorf("args %q pass %s, want it left to the binary's default", args, a)
					}
				}
			}
		})
	}
}

// Go's threads follow the CPU request unless a CPU limit sets them; a
// variable the user names in gateway.extraEnv takes the chart's place
// (a duplicate name would hide one definition, and server-side apply
// mishandles it).
func TestChartSetsGoRuntimeLimitsUnlessTheUserDoes(t *testing.T) {
	cases := []struct {
		name      string
		set       []string
		maxProcs  []string // the container's GOMAXPROCS definitions, in order
		memLimits []string // and GOMEMLIMIT's
	}{
		{"defaults: the CPU request and the memory limit", nil, []string{"requests.cpu"}, []string{"limits.memory"}},
		{"a CPU limit: Go follows it", []string{"--set", "resources.limits.cpu=2"}, nil, []string{"limits.memory"}},
		{"no CPU request", []string{"--set", "resources.requests.cpu=null"}, nil, []string{"limits.memory"}},
		{"no resources at all", []string{"--set", "resources=null"}, nil, []string{"limits.memory"}},
		{"the user's own", []string{"--set", "gateway.extraEnv[0].name=GOMAXPROCS", "--set-string", "gateway.extraEnv[0].value=4",
			"--set", "gateway.extraEnv[1].name=GOMEMLIMIT", "--set-string", "gateway.extraEnv[1].value=450MiB"},
			[]string{"4"}, []string{"450MiB"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d appsv1.Deployment
			find(t, render(t, tc.set...), "Deployment", "rel-opgate", &d)
			defined := map[string][]string{}
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				v := e.Value
				if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
					v = e.ValueFrom.ResourceFieldRef.Resource
				}
				defined[e.Name] = append(defined[e.Name], v)
			}
			if got := defined["GOMAXPROCS"]; !slices.Equal(got, tc.maxProcs) {
				t.Errorf("GOMAXPROCS defined as %q, want %q", got, tc.maxProcs)
			}
			if got := defined["GOMEMLIMIT"]; !slices.Equal(got, tc.memLimits) {
				t.Errorf("GOMEMLIMIT defined as %q, want %q", got, tc.memLimits)
			}
		})
	}
}

// Helm accepts release names of up to 53 characters, dots and a leading
// digit included; every name the chart derives from one must be valid for
// its kind (a Service's a DNS-1035 label), or the install fails.
func TestChartNamesAreValidForEveryReleaseNameHelmAccepts(t *testing.T) {
	releases := []string{
		"rel",
		"2gw",
		"gw.prod",
		"platform-team-webhook-operator-gateway-production",     // 49: <fullname>-metrics was 64
		"a2345678901234567890123456789012345678901234567890123", // 53, Helm's maximum
		"9.opgate-" + strings.Repeat("x", 44),
	}
	for _, release := range releases {
		t.Run(release, func(t *testing.T) {
			out, err := helm(t, "template", release, chartDir, "--namespace", "ops", "--set", "serviceMonitor.enabled=true")
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			objs := decode(t, out)
			if len(objs) == 0 {
				t.Fatal("the chart rendered nothing")
			}
			for _, u := range objs {
				for _, msg := range nameErrors(u.GetKind(), u.GetName()) {
					t.Errorf("%s name %q: %s", u.GetKind(), u.GetName(), msg)
				}
				for k, v := range u.GetLabels() {
					for _, msg := range validation.IsValidLabelValue(v) {
						t.Errorf("%s %s label %s=%q: %s", u.GetKind(), u.GetName(), k, v, msg)
					}
				}
			}
		})
	}
}

// nameErrors checks a name as the API server does for its kind.
func nameErrors(kind, name string) []string {
	switch kind {
	case "Service":
		return validation.IsDNS1035Label(name)
	case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
		return content.IsPathSegmentName(name)
	default:
		return validation.IsDNS1123Subdomain(name)
	}
}

// A PodDisruptionBudget nothing can satisfy during a drain (one replica,
// minAvailable 1) blocks `kubectl drain` of its node for good.
func TestChartRendersAPodDisruptionBudgetOnlyWhenADrainCanEvictAPod(t *testing.T) {
	cases := []struct {
		name    string
		set     []string
		wantPDB bool
		wantErr string
	}{
		{"defaults: 2 replicas, 1 must stay", nil, true, ""},
		{"1 replica: none", []string{"--set", "replicaCount=1", "--set", "leaderElection.enabled=false"}, false, ""},
		{"1 elected replica: none", []string{"--set", "replicaCount=1"}, false, ""},
		{"disabled", []string{"--set", "podDisruptionBudget.enabled=false"}, false, ""},
		{"minAvailable as many as the replicas", []string{"--set", "podDisruptionBudget.minAvailable=2"}, false, "podDisruptionBudget.minAvailable"},
		{"3 replicas, 2 must stay", []string{"--set", "replicaCount=3", "--set", "podDisruptionBudget.minAvailable=2"}, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "rel", chartDir, "--namespace", "ops"}, tc.set...)...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("helm template: err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			got := slices.ContainsFunc(decode(t, out), func(u *unstructured.Unstructured) bool { return u.GetKind() == "PodDisruptionBudget" })
			if got != tc.wantPDB {
				t.Errorf("a PodDisruptionBudget rendered: %v, want %v", got, tc.wantPDB)
			}
		})
	}
}

// minAvailable given as a string (a percentage, or a quoted number from a
// values file) is held to the same rule: a PodDisruptionBudget that allows
// no disruption blocks every drain. Whether it allows one is Kubernetes'
// own arithmetic (the disruption controller rounds a percentage of
// minAvailable up), not the chart's guess; a quoted number renders as a
// number, which the API server requires of a minAvailable not a percentage.
func TestChartRefusesAStringMinAvailableThatAllowsNoDisruption(t *testing.T) {
	cases := []struct {
		replicas     int
		minAvailable string
	}{
		{2, "100%"}, {2, "2"}, {2, "51%"}, {2, "50%"}, {2, "1"}, {2, "0%"},
		{3, "67%"}, {3, "66%"}, {3, "3"}, {3, "2"}, {5, "80%"}, {5, "81%"},
		{2, "150%"}, {2, "half"}, {2, "1.5"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d replicas, minAvailable %s", tc.replicas, tc.minAvailable), func(t *testing.T) {
			v := intstr.Parse(tc.minAvailable)
			required, err := intstr.GetScaledValueFromIntOrPercent(&v, tc.replicas, true)
			wantRefused := err != nil || required >= tc.replicas
			out, err := helm(t, "template", "rel", chartDir, "--namespace", "ops", "--show-only", "templates/pdb.yaml",
				"--set", fmt.Sprintf("replicaCount=%d", tc.replicas), "--set-string", "podDisruptionBudget.minAvailable="+tc.minAvailable)
			if wantRefused {
				if err == nil || !strings.Contains(err.Error(), "podDisruptionBudget.minAvailable") {
					t.Fatalf("helm template: err = %v, want one naming podDisruptionBudget.minAvailable; rendered:\n%s", err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			var pdb policyv1.PodDisruptionBudget
			find(t, decode(t, out), "PodDisruptionBudget", "rel-opgate", &pdb)
			if got := pdb.Spec.MinAvailable; got == nil || *got != v {
				t.Errorf("minAvailable rendered %v, want %v", got, v)
			}
		})
	}
}

// `kubectl drain` refuses pods with emptyDir volumes unless told to
// delete their data; the gateway writes no file, so it needs none.
func TestChartPodHasNoLocalStorage(t *testing.T) {
	var d appsv1.Deployment
	find(t, render(t), "Deployment", "rel-opgate", &d)
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.EmptyDir != nil {
			t.Errorf("volume %s is an emptyDir: kubectl drain refuses the pod without --delete-emptydir-data", v.Name)
		}
	}
}

// Without leader election every replica runs every operator: two of them
// call each handler twice and fight over the same objects.
func TestChartRefusesSeveralReplicasWithoutLeaderElection(t *testing.T) {
	cases := []struct {
		name    string
		set     []string
		wantErr bool
	}{
		{"2 replicas unelected", []string{"--set", "leaderElection.enabled=false"}, true},
		{"3 replicas unelected", []string{"--set", "leaderElection.enabled=false", "--set", "replicaCount=3"}, true},
		{"1 replica unelected", []string{"--set", "leaderElection.enabled=false", "--set", "replicaCount=1"}, false},
		{"2 replicas elected", nil, false},
		{"2 replicas unelected by extraArgs", []string{"--set", "gateway.extraArgs={--leader-elect=false}"}, true},
		{"1 replica unelected by extraArgs", []string{"--set", "gateway.extraArgs={--leader-elect=false}", "--set", "replicaCount=1"}, false},
		{"2 replicas elected by extraArgs", []string{"--set", "leaderElection.enabled=false", "--set", "gateway.extraArgs={--leader-elect}"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helm(t, append([]string{"template", "rel", chartDir}, tc.set...)...)
			refused := err != nil && strings.Contains(err.Error(), "leaderElection.enabled") && strings.Contains(err.Error(), "replicaCount")
			if refused != tc.wantErr {
				t.Errorf("helm template: err = %v, want refused (naming leaderElection.enabled and replicaCount): %v", err, tc.wantErr)
			}
		})
	}
}

// The gateway refuses operator names longer than spec.MaxNameLength (its
// state annotation key); the schema must refuse them before the install.
func TestChartOperatorNamesFollowTheGatewaysRule(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{strings.Repeat("a", spec.MaxNameLength), true},
		{strings.Repeat("a", spec.MaxNameLength+1), false},
		{"shop-1", true},
		{"Shop", false},
		{"shop.v1", false},
		{"-shop", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helm(t, "template", "rel", chartDir, "--set", "operators[0].name="+tc.name, "--set", "operators[0].spec.watch.kind=X")
			if (err == nil) != tc.ok {
				t.Errorf("operator name %q (%d characters): err = %v, want accepted: %v", tc.name, len(tc.name), err, tc.ok)
			}
		})
	}
}

// `helm upgrade --reuse-values` renders a new chart with the values of the
// release it upgrades, which lack every key added since: each top-level map
// of values.yaml may be missing, and the chart still renders (with its
// defaults for what matters), except the image, which it cannot guess.
func TestChartRendersWithTheValuesOfAnOlderRelease(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var defaults map[string]any
	if err := yaml.Unmarshal(data, &defaults); err != nil {
		t.Fatal(err)
	}
	for key, v := range defaults {
		if _, isMap := v.(map[string]any); !isMap {
			continue
		}
		t.Run(key, func(t *testing.T) {
			out, err := helm(t, "template", "rel", chartDir, "--namespace", "ops", "--set", key+"=null")
			if key == "image" {
				if err == nil || !strings.Contains(err.Error(), "image.repository") {
					t.Errorf("without image: err = %v, want one naming image.repository", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("without %s: %v", key, err)
			}
			var d appsv1.Deployment
			find(t, decode(t, out), "Deployment", "rel-opgate", &d)
			if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--leader-elect") || !slices.Contains(args, "--ui=false") {
				t.Errorf("without %s the gateway runs with %q, want the chart's defaults (--leader-elect, --ui=false)", key, args)
			}
		})
	}
}
