package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// rolloutTimeout is generous: on a busy 2-core machine the controllers take
// seconds, not minutes, but a slow run should not flake.
const rolloutTimeout = 2 * time.Minute

// TestDeploymentRollsOutAndIsGarbageCollected is the acceptance check of the
// local cluster: the scheduler places pods on the kwok nodes, kwok runs
// them, and deleting a Deployment lets the garbage collector remove its
// ReplicaSet and pods.
func TestDeploymentRollsOutAndIsGarbageCollected(t *testing.T) {
	tests := []struct {
		name     string
		image    string
		replicas int32
	}{
		{name: "web", image: "nginx", replicas: 3},
		{name: "single", image: "nginx", replicas: 1},
	}
	client := Clientset(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := NewNamespace(t, client)
			deployments := client.AppsV1().Deployments(ns)
			created, err := deployments.Create(t.Context(), deployment(tt.name, tt.image, tt.replicas), metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create deployment %s/%s: %v", ns, tt.name, err)
			}

			Eventually(t, rolloutTimeout, fmt.Sprintf("deployment %s to have %d ready replicas", tt.name, tt.replicas),
				func(ctx context.Context) (bool, string, error) {
					d, err := deployments.Get(ctx, tt.name, metav1.GetOptions{})
					if err != nil {
						return false, "", err
					}
					return d.Status.ReadyReplicas == tt.replicas,
						fmt.Sprintf("readyReplicas=%d", d.Status.ReadyReplicas), nil
				})
			Eventually(t, rolloutTimeout, fmt.Sprintf("%d pods Running", tt.replicas),
				func(ctx context.Context) (bool, string, error) {
					return podsRunning(ctx, client, ns, tt.name, tt.replicas)
				})

			rs := ownedReplicaSet(t, client, ns, tt.name, created.UID)
			err = deployments.Delete(t.Context(), tt.name, metav1.DeleteOptions{
				PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
			})
			if err != nil {
				t.Fatalf("delete deployment %s/%s: %v", ns, tt.name, err)
			}
			Eventually(t, rolloutTimeout, "the garbage collector to remove replicaset "+rs.Name+" and its pods",
				func(ctx context.Context) (bool, string, error) {
					return replicaSetAndPodsGone(ctx, client, ns, tt.name, rs.Name)
				})
		})
	}
}

func deployment(name, image string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: image}}},
			},
		},
	}
}

// podsRunning holds when exactly want pods of app are Running, each on a
// kwok node with a pod IP.
func podsRunning(ctx context.Context, client kubernetes.Interface, ns, app string, want int32) (bool, string, error) {
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return false, "", err
	}
	var running int32
	var states []string
	for _, pod := range pods.Items {
		states = append(states, fmt.Sprintf("%s=%s@%s", pod.Name, pod.Status.Phase, pod.Spec.NodeName))
		if pod.Status.Phase == corev1.PodRunning && strings.HasPrefix(pod.Spec.NodeName, "kwok-node-") && pod.Status.PodIP != "" {
			running++
		}
	}
	return running == want && len(pods.Items) == int(want), strings.Join(states, ", "), nil
}

// ownedReplicaSet returns the one ReplicaSet of app, and fails unless the
// Deployment with uid controls it and it controls every pod of app.
func ownedReplicaSet(t *testing.T, client kubernetes.Interface, ns, app string, uid types.UID) appsv1.ReplicaSet {
	t.Helper()
	selector := metav1.ListOptions{LabelSelector: "app=" + app}
	sets, err := client.AppsV1().ReplicaSets(ns).List(t.Context(), selector)
	if err != nil {
		t.Fatalf("list replicasets: %v", err)
	}
	if len(sets.Items) != 1 {
		t.Fatalf("want 1 replicaset of %s, got %d", app, len(sets.Items))
	}
	rs := sets.Items[0]
	if owner := metav1.GetControllerOf(&rs); owner == nil || owner.UID != uid {
		t.Fatalf("replicaset %s: controller %v, want deployment %s (uid %s)", rs.Name, owner, app, uid)
	}
	pods, err := client.CoreV1().Pods(ns).List(t.Context(), selector)
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	for _, pod := range pods.Items {
		if owner := metav1.GetControllerOf(&pod); owner == nil || owner.UID != rs.UID {
			t.Errorf("pod %s: controller %v, want replicaset %s", pod.Name, owner, rs.Name)
		}
	}
	return rs
}

// replicaSetAndPodsGone holds when replicaset rs and every pod of app are
// deleted (not just marked for deletion).
func replicaSetAndPodsGone(ctx context.Context, client kubernetes.Interface, ns, app, rs string) (bool, string, error) {
	_, err := client.AppsV1().ReplicaSets(ns).Get(ctx, rs, metav1.GetOptions{})
	rsGone := apierrors.IsNotFound(err)
	if err != nil && !rsGone {
		return false, "", err
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return false, "", err
	}
	return rsGone && len(pods.Items) == 0,
		fmt.Sprintf("replicaset gone=%t, %d pods left", rsGone, len(pods.Items)), nil
}
