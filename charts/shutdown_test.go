package charts

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/internal/testenv"
)

// The kubelet kills a pod its grace period after SIGTERM. The gateway's
// shutdown waits, one after the other, for the record writes of its passes
// in flight, the GatewayStopped writes and the Lease's release
// (runner.MaxShutdown); killed before, it leaves the Lease to run out and
// no replica leads meanwhile. Read back from a real kube-apiserver, which
// defaults an unset grace period.
func TestChartGracePeriodCoversTheGatewaysShutdown(t *testing.T) {
	kube := kubernetes.NewForConfigOrDie(testenv.StartForTest(t).Config)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		args []string
		ok   func(seconds int64) bool
		want string
	}{
		{"default", nil, func(s int64) bool { return time.Duration(s)*time.Second > runner.MaxShutdown },
			fmt.Sprintf("longer than the gateway's shutdown (%s)", runner.MaxShutdown)},
		{"set", []string{"--set", "terminationGracePeriodSeconds=90"}, func(s int64) bool { return s == 90 }, "90"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := "grace-" + tc.name
			if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			var d appsv1.Deployment
			find(t, render(t, tc.args...), "Deployment", "rel-opgate", &d)
			d.Namespace = ns
			got, err := kube.AppsV1().Deployments(ns).Create(ctx, &d, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if s := got.Spec.Template.Spec.TerminationGracePeriodSeconds; s == nil || !tc.ok(*s) {
				t.Errorf("helm template %v: the stored terminationGracePeriodSeconds is %v s, want %s", tc.args, ptrString(s), tc.want)
			}
		})
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
