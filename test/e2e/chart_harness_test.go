package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/opgate/opgate/internal/localcluster"
)

// The chart as a platform team installs it: helm against the shared
// cluster, and the gateway authenticated as the chart's ServiceAccount.

// helm runs the helm binary `make tools` built, against the shared cluster.
func helm(t testing.TB, args ...string) string {
	t.Helper()
	out, err := helmErr(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func helmErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(localcluster.DefaultBinDir(), "helm"), append(args, "--kubeconfig", Kubeconfig())...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w\n%s", err, errOut.String())
	}
	return out.String(), nil
}

// renderChart runs helm template with args and decodes the objects.
func renderChart(t testing.TB, release, namespace string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out := helm(t, append([]string{"template", release, "charts/opgate", "--namespace", namespace}, args...)...)
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decode the rendered chart: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// chartClient resolves rendered objects to their resources.
type chartClient struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func newChartClient(t testing.TB) *chartClient {
	t.Helper()
	disco, err := discovery.NewDiscoveryClientForConfig(RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &chartClient{dyn: dynamicClient(t), mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}
}

func (c *chartClient) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	return c.dyn.Resource(m.Resource), nil
}

// dryRunCreate creates u with a server-side dry run: admission, schema
// and RBAC escalation checks run, nothing is stored.
func (c *chartClient) dryRunCreate(ctx context.Context, u *unstructured.Unstructured) error {
	res, err := c.resource(u)
	if err != nil {
		return err
	}
	_, err = res.Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: "opgate-e2e"})
	return err
}

// get returns the object as the cluster holds it.
func (c *chartClient) get(ctx context.Context, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	res, err := c.resource(u)
	if err != nil {
		return nil, err
	}
	return res.Get(ctx, u.GetName(), metav1.GetOptions{})
}

// waitObjects waits until every object exists (want true) or none does.
func (c *chartClient) waitObjects(t testing.TB, objs []*unstructured.Unstructured, want bool) {
	t.Helper()
	what := "every rendered object to exist"
	if !want {
		what = "every rendered object to be gone"
	}
	Eventually(t, rolloutTimeout, what, func(ctx context.Context) (bool, string, error) {
		for _, u := range objs {
			_, err := c.get(ctx, u)
			switch {
			case err == nil && !want:
				return false, fmt.Sprintf("%s %s/%s still exists", u.GetKind(), u.GetNamespace(), u.GetName()), nil
			case apierrors.IsNotFound(err) && want:
				return false, fmt.Sprintf("%s %s/%s does not exist", u.GetKind(), u.GetNamespace(), u.GetName()), nil
			case err != nil && !apierrors.IsNotFound(err):
				return false, "", err
			}
		}
		return true, "", nil
	})
}

// serviceAccountKubeconfig writes a kubeconfig authenticating as the
// ServiceAccount with a token from the TokenRequest API, as a pod's
// projected token would.
func serviceAccountKubeconfig(t testing.TB, namespace, name string) string {
	t.Helper()
	ctx := context.Background()
	tr, err := Clientset(t).CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", namespace, name, err)
	}
	admin := RESTConfig()
	ca := admin.CAData
	if len(ca) == 0 && admin.CAFile != "" {
		if ca, err = os.ReadFile(admin.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "sa"}
	cfg.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// exampleCRD is the path of an example's CRD in examples/crds/.
func exampleCRD(t testing.TB, file string) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "examples", "crds", file)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("example CRD: %v", err)
	}
	return p
}

// runGatewayCommand runs the built gateway binary with args and returns
// its standard output.
func runGatewayCommand(t testing.TB, bins binaries, args ...string) string {
	t.Helper()
	cmd := exec.Command(bins.gateway, args...)
	cmd.Dir = repoRoot(t)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("gateway %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}
