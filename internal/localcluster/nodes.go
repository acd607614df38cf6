package localcluster

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kwokNodeAnnotation marks the nodes kwok plays the kubelet for.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// NodeName is the name of the i-th node (from 0) of a local cluster.
func NodeName(i int) string { return fmt.Sprintf("kwok-node-%d", i) }

// fakeNode is a node kwok manages: large enough that scheduling never fails
// for lack of room, and untainted so that ordinary pods land on it.
func fakeNode(name string) *corev1.Node {
	room := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("1000"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
		Status: corev1.NodeStatus{
			Capacity:    room,
			Allocatable: room,
			NodeInfo:    corev1.NodeSystemInfo{KubeletVersion: "kwok-v0.6.1", OperatingSystem: "linux", Architecture: "amd64"},
		},
	}
}

// ensureNodes creates the cluster's nodes that do not exist yet, and deletes
// the node leases a previous run left: they are held by the kwok of that
// run, and the new kwok would wait for them to expire before taking over.
// Call it before kwok starts.
func ensureNodes(ctx context.Context, client kubernetes.Interface, count int) error {
	for i := range count {
		name := NodeName(i)
		_, err := client.CoreV1().Nodes().Create(ctx, fakeNode(name), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		err = client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete stale lease of node %s: %w", name, err)
		}
	}
	return nil
}

// nodesReady reports whether the first count nodes are Ready and their
// kubelet — kwok — renewed their lease since since (a restarted cluster
// finds its nodes still marked Ready by the kwok of the last run), and if
// not, which node is not and why.
func nodesReady(ctx context.Context, client kubernetes.Interface, count int, since time.Time) (bool, string, error) {
	for i := range count {
		node, err := client.CoreV1().Nodes().Get(ctx, NodeName(i), metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		if !nodeReady(node) {
			return false, "node " + node.Name + " not Ready yet", nil
		}
		lease, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "node " + node.Name + " has no lease yet", nil
		}
		if err != nil {
			return false, "", err
		}
		if lease.Spec.RenewTime == nil || lease.Spec.RenewTime.Time.Before(since.Truncate(time.Second)) {
			return false, "lease of node " + node.Name + " not renewed since the start", nil
		}
	}
	return true, "", nil
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
