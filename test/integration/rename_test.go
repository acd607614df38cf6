package integration

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

// A callback's events were once listed under `on`. Both the API server (the
// CRD's CEL rule) and the gateway's own reader (what `gateway validate` and
// `gateway run -f` use) must say what the field is called now, whether the
// key arrives as "on" or, read by kubectl's YAML 1.1, as "true".
func TestRenamedOnFieldIsRefusedWithItsNewName(t *testing.T) {
	const want = "renamed to `events`"
	doc := func(key string) string {
		return `
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: renamed-on}
spec:
  watch: {apiVersion: v1, kind: ConfigMap}
  handler: {url: "http://127.0.0.1:9"}
  callbacks:
    - id: create
      ` + key + `: [create]
`
	}
	for _, key := range []string{"on", `"on"`} {
		t.Run(key, func(t *testing.T) {
			obj := &unstructured.Unstructured{}
			// sigs.k8s.io/yaml reads YAML 1.1, as kubectl does: a bare on is true.
			if err := yaml.Unmarshal([]byte(doc(key)), &obj.Object); err != nil {
				t.Fatal(err)
			}
			_, err := dyn(t).Resource(engine.OperatorResource).Create(context.Background(), obj, metav1.CreateOptions{FieldValidation: "Strict"})
			if err == nil {
				_ = dyn(t).Resource(engine.OperatorResource).Delete(context.Background(), obj.GetName(), metav1.DeleteOptions{})
				t.Fatal("the API server accepted a callback without events")
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("API server error = %v, want it to say %q", err, want)
			}

			_, err = spec.Parse([]byte(doc(key)), "old.yaml")
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("gateway's reader: error = %v, want it to say %q", err, want)
			}
		})
	}
}
