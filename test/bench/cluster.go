package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/internal/localcluster"
)

// startCluster starts etcd, kube-apiserver and a kube-controller-manager
// running only the garbage collector, on free ports under dir.
func startCluster(ctx context.Context, dir string, profile bool, log *slog.Logger) (*localcluster.Cluster, error) {
	ports, err := localcluster.FreePorts(5)
	if err != nil {
		return nil, err
	}
	var apiServerFlags []string
	if profile {
		apiServerFlags = []string{"--profiling=true"} // its /debug/pprof, for -profile
	}
	return localcluster.Start(ctx, localcluster.Config{
		APIServerFlags:        apiServerFlags,
		DataDir:               dir,
		APIServerPort:         ports[0],
		EtcdClientPort:        ports[1],
		EtcdPeerPort:          ports[2],
		ControllerManagerPort: ports[3],
		SchedulerPort:         ports[4],
		Controllers:           []string{"garbagecollector"},
		ControlPlaneOnly:      true,
		// The garbage collector deletes N children per run; at the
		// default 20 QPS it would set the pace of the delete phase.
		ControllerManagerFlags: []string{"--kube-api-qps=500", "--kube-api-burst=1000"},
		// Installed first, the CRD is known to the garbage collector from
		// its start: otherwise it collects the first run's children only
		// after its discovery resync and a backoff (minutes).
		BeforeControllers: installCRD,
		KillWithParent:    true,
		Logger:            log,
	})
}

// installCRD creates the bench Memcached resource and waits until it is
// served.
func installCRD(ctx context.Context, cfg *rest.Config) error {
	client, err := apiext.NewForConfig(cfg)
	if err != nil {
		return err
	}
	preserve := true
	crd := &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: resource + "." + group},
		Spec: apiextv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: resource, Singular: "memcached"},
			Scope: apiextv1.NamespaceScoped,
			Versions: []apiextv1.CustomResourceDefinitionVersion{{
				Name: version, Served: true, Storage: true,
				Subresources: &apiextv1.CustomResourceSubresources{Status: &apiextv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextv1.JSONSchemaProps{
							"size": {Type: "integer", Format: "int32", Minimum: ptr(1.0), Maximum: ptr(10.0)},
						}},
						"status": {Type: "object", XPreserveUnknownFields: &preserve, Properties: map[string]apiextv1.JSONSchemaProps{
							"observedSize":   {Type: "integer"},
							"deploymentName": {Type: "string"},
						}},
					},
				}},
			}},
		},
	}
	if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create CRD: %w", err)
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

func createNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
