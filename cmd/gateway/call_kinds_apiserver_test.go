package main

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/opgate/opgate/gateway/rbac"
	"github.com/opgate/opgate/internal/testenv"
)

// servedBuiltins starts a kube-apiserver serving every API group and
// version it has, alpha and beta too, and calls visit for each kind it
// serves that client-go's scheme knows; subresources are the resource's
// subresources ("status", ...).
func servedBuiltins(t *testing.T, visit func(gvk schema.GroupVersionKind, namespaced bool, subresources map[string]bool, verbs []string)) {
	t.Helper()
	dir, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: dir}
	env.ControlPlane.GetAPIServer().Configure().Set("runtime-config", "api/all=true")
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	_, lists, err := discovery.NewDiscoveryClientForConfigOrDie(cfg).ServerGroupsAndResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		subresources := map[string]map[string]bool{}
		for _, r := range l.APIResources {
			if name, sub, ok := strings.Cut(r.Name, "/"); ok {
				if subresources[name] == nil {
					subresources[name] = map[string]bool{}
				}
				subresources[name][sub] = true
			}
		}
		for _, r := range l.APIResources {
			if gvk := gv.WithKind(r.Kind); !strings.Contains(r.Name, "/") && scheme.Scheme.Recognizes(gvk) {
				visit(gvk, r.Namespaced, subresources[r.Name], r.Verbs)
			}
		}
	}
}

// gateway call takes the scope of built-in kinds from the offline
// resolver (gateway rbac's), not from discovery: it must agree with the
// API server on every kind both know.
func TestOfflineKindScopesAgreeWithTheAPIServer(t *testing.T) {
	offline := rbac.NewOffline()
	servedBuiltins(t, func(gvk schema.GroupVersionKind, namespaced bool, _ map[string]bool, _ []string) {
		res, err := offline.Resolve(gvk)
		if err != nil {
			t.Errorf("%s: %v", gvk, err)
			return
		}
		if res.Namespaced != namespaced {
			t.Errorf("%s: offline namespaced %t, the API server's discovery %t", gvk, res.Namespaced, namespaced)
		}
	})
}
