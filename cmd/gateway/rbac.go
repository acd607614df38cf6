package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/opgate/opgate/gateway/rbac"
	"github.com/opgate/opgate/gateway/spec"
)

type rbacOptions struct {
	files           []string
	crds            []string
	fromCluster     bool
	discover        bool
	namespaceScoped bool
	secretNamespace string
	allowSecrets    bool
	values          bool
	name            string
	serviceAccount  string
	kube            runOptions // kubeconfig and context only
}

func newRBACCommand() *cobra.Command {
	o := rbacOptions{}
	cmd := &cobra.Command{
		Use:   "rbac",
		Short: "Print the least-privilege RBAC the given WebhookOperators need",
		Long: `Print the ClusterRole (with --namespace-scoped, Roles in the namespaces that
watch.namespaces lists) that the watched, child and related kinds of the given
WebhookOperators need, as YAML for kubectl apply, or with --values as the chart's
rbac.rules. The gateway's own permissions (WebhookOperators, Events, CRDs, its
Lease and Secrets) are not included: the chart grants them.

Rules on Secrets are refused unless they are a Role in --secret-namespace
(with --namespace-scoped): the gateway sends watched, child and related
objects whole to the handler, so they would undo gateway run's
--secret-namespace. --allow-secrets prints them anyway.

Kinds are resolved to resources offline for Kubernetes' built-in kinds and for
CRDs given with --crd; --discover (implied by --from-cluster) asks the API server.`,
		Example: `  gateway rbac -f examples/operators/memcached.yaml --crd examples/crds/memcacheds.cache.example.com.yaml
  gateway rbac --from-cluster --values > rbac-values.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), cmd.OutOrStdout()) },
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "file", "f", nil, "WebhookOperator file or directory (repeatable)")
	f.StringArrayVar(&o.crds, "crd", nil, "CustomResourceDefinition file (repeatable) defining kinds to resolve offline")
	f.BoolVar(&o.fromCluster, "from-cluster", false, "read the WebhookOperators that exist in the cluster (implies --discover)")
	f.BoolVar(&o.discover, "discover", false, "resolve kinds with the API server's discovery")
	f.BoolVar(&o.namespaceScoped, "namespace-scoped", false, "Roles in the namespaces of watch.namespaces instead of one ClusterRole where possible")
	f.StringVar(&o.secretNamespace, "secret-namespace", "", "the gateway's --secret-namespace: the only namespace rules on Secrets may be in")
	f.BoolVar(&o.allowSecrets, "allow-secrets", false, "print rules on Secrets outside --secret-namespace too")
	f.BoolVar(&o.values, "values", false, "print the chart's rbac.rules / rbac.namespaceRules values instead of manifests")
	f.StringVar(&o.name, "name", "opgate-operators", "name of the ClusterRole, Roles and bindings")
	f.StringVar(&o.serviceAccount, "service-account", "", "namespace/name of the gateway's ServiceAccount: also print the bindings to it")
	f.StringVar(&o.kube.kubeconfig, "kubeconfig", "", "kubeconfig file (as for gateway run)")
	f.StringVar(&o.kube.context, "context", "", "kubeconfig context to use")
	return cmd
}

func (o *rbacOptions) run(ctx context.Context, out io.Writer) error {
	if (len(o.files) > 0) == o.fromCluster {
		return errors.New("give either -f files or --from-cluster")
	}
	var sa *rbac.Subject
	if o.serviceAccount != "" {
		ref, err := parseRecordRef(o.serviceAccount)
		if err != nil {
			return fmt.Errorf("--service-account %q: want namespace/name", o.serviceAccount)
		}
		sa = &rbac.Subject{Namespace: ref.Namespace, Name: ref.Name}
	}
	ops, resolver, err := o.load(ctx)
	if err != nil {
		return err
	}
	rules, err := rbac.For(ops, resolver, o.namespaceScoped)
	if err != nil {
		return err
	}
	if !o.allowSecrets {
		if err := rules.CheckSecrets(o.secretNamespace); err != nil {
			return err
		}
	}
	var doc []byte
	if o.values {
		doc, err = rules.Values()
	} else {
		doc, err = rules.Manifests(o.name, sa)
	}
	if err != nil {
		return err
	}
	_, err = out.Write(doc)
	return err
}

// load returns the operators and the resolver for their kinds.
func (o *rbacOptions) load(ctx context.Context) ([]*spec.WebhookOperator, rbac.Resolver, error) {
	var ops []*spec.WebhookOperator
	if len(o.files) > 0 {
		var err error
		if ops, err = spec.LoadFiles(o.files...); err != nil {
			return nil, nil, err
		}
	}
	if !o.fromCluster && !o.discover {
		crds, err := loadCRDs(o.crds)
		if err != nil {
			return nil, nil, err
		}
		return ops, rbac.NewOffline(crds...), nil
	}
	cfg, _, err := o.kube.restConfig()
	if err != nil {
		return nil, nil, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("discovery client: %w", err)
	}
	resolver := rbac.MapperResolver{Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}
	if o.fromCluster {
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("dynamic client: %w", err)
		}
		if ops, err = rbac.ClusterOperators(ctx, dyn); err != nil {
			return nil, nil, err
		}
	}
	return ops, resolver, nil
}

// loadCRDs reads CustomResourceDefinitions (several documents per file);
// other kinds are refused, naming the file and document.
func loadCRDs(paths []string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--crd: %w", err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for doc := 1; ; doc++ {
			var crd apiextensionsv1.CustomResourceDefinition
			err := dec.Decode(&crd)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("--crd %s: document %d: %w", p, doc, err)
			}
			if crd.Kind == "" && crd.APIVersion == "" {
				continue // empty document
			}
			if crd.Kind != "CustomResourceDefinition" || !strings.HasPrefix(crd.APIVersion, "apiextensions.k8s.io/") {
				return nil, fmt.Errorf("--crd %s: document %d: is %s %s, want apiextensions.k8s.io/v1 CustomResourceDefinition", p, doc, crd.APIVersion, crd.Kind)
			}
			out = append(out, &crd)
		}
	}
	return out, nil
}
