package charts

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/internal/testenv"
)

// The CRD upgrade install.md documents, against a real kube-apiserver: Helm
// created the CRD on the first install (manager "helm", an Update in its
// managed fields) and owns .spec.versions, an atomic list, so a server-side
// apply of any changed CRD by kubectl conflicts with it unless the command
// forces: the chart's CRD file is the authority over the old one.
func TestDocumentedCRDUpgradeAppliesOverTheCRDHelmCreated(t *testing.T) {
	command := documentedCRDApply(t)
	force := strings.Contains(command, "--force-conflicts")
	env := testenv.StartForTest(t)
	crds := apiextensionsclient.NewForConfigOrDie(env.Config).ApiextensionsV1().CustomResourceDefinitions()
	ctx := context.Background()

	current := chartCRD(t)
	older := current.DeepCopy()
	older.Spec.Versions[0].Schema.OpenAPIV3Schema.Description = "an older release's schema"
	if _, err := crds.Create(ctx, older, metav1.CreateOptions{FieldManager: "helm"}); err != nil {
		t.Fatalf("create the CRD as helm install does: %v", err)
	}
	data, err := json.Marshal(current)
	if err != nil {
		t.Fatal(err)
	}
	// kubectl apply --server-side applies as field manager "kubectl".
	_, err = crds.Patch(ctx, current.Name, types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "kubectl", Force: &force})
	if err != nil {
		t.Fatalf("install.md's `%s` over the CRD helm created: %v", command, err)
	}
	got, err := crds.Get(ctx, current.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spec.Versions[0].Schema, current.Spec.Versions[0].Schema) {
		t.Errorf("after `%s` the cluster still serves the older schema", command)
	}
}

// documentedCRDApply is the CRD upgrade command of install.md's "Upgrading".
func documentedCRDApply(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "kubectl apply --server-side") && strings.Contains(line, "charts/opgate/crds/") {
			return line
		}
	}
	t.Fatal("docs/install.md shows no `kubectl apply --server-side ... charts/opgate/crds/`")
	return ""
}

func chartCRD(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "crds", "opgate.dev_webhookoperators.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatalf("the chart's CRD: %v", err)
	}
	return &crd
}
