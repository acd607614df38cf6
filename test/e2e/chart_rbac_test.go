package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/spec"
)

// TestChartServiceAccountRunsTheMemcachedWalkthrough proves the chart's
// RBAC is enough and each rule needed: the gateway runs outside the
// cluster (kwok runs no containers) authenticated as the chart's
// ServiceAccount, with only the chart's base roles and the rules `gateway
// rbac` printed for the memcached operator, registered as a
// WebhookOperator object; the walkthrough completes. With the Pod rule
// left out of rbac.rules, the WebhookOperator says which permission is
// missing (Ready=False/Forbidden and a Warning Event), and it recovers by
// itself once the rule is back.
func TestChartServiceAccountRunsTheMemcachedWalkthrough(t *testing.T) {
	bins := buildBinaries(t)
	installCRDs(t)
	gwNS := NewNamespace(t, Clientset(t))
	w := newWalk(t, memcachedResource, "Memcached")
	const release = "opgate-rbac"
	handlerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	h := goMemcachedHandler(t, bins, handlerAddr, "")
	h.waitListening(t, handlerAddr)
	opFile := operatorFile(t, "memcached.yaml", func(op *spec.WebhookOperator) {
		op.Spec.Watch.Namespaces = []string{w.ns}
		op.Spec.Handler.URL = "http://" + handlerAddr
		setTimerInterval(t, op, "backup", timerInterval)
		op.Spec.Status = &spec.StatusSpec{Conditions: true} // playMemcached checks Reconciled
	})
	full := chartValues(t, bins, opFile, nil)
	withoutPods := chartValues(t, bins, opFile, func(v map[string]any) {
		r := v["rbac"].(map[string]any)
		var kept []any
		for _, rule := range r["rules"].([]any) {
			if !strings.Contains(fmt.Sprint(rule), "pods") {
				kept = append(kept, rule)
			}
		}
		if len(kept) != len(r["rules"].([]any))-1 {
			t.Fatalf("gateway rbac printed no single rule for pods: %v", r["rules"])
		}
		r["rules"] = kept
	})
	helm(t, "install", release, "charts/opgate", "--namespace", gwNS, "-f", full)
	t.Cleanup(func() { _, _ = helmErr(t, "uninstall", release, "--namespace", gwNS) })
	kubeconfig := serviceAccountKubeconfig(t, gwNS, release)

	startSAGateway := func(name string) *process {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		p := startProcess(t, name, []string{"POD_NAMESPACE=" + gwNS}, bins.gateway, "run",
			"--kubeconfig", kubeconfig, "--addr", addr, "--leader-elect", "--log-level", "debug")
		p.waitListening(t, addr)
		return p
	}
	gw := startSAGateway("gateway-sa")
	op := createOperatorFromFile(t, opFile)
	t.Cleanup(func() {
		_ = dynamicClient(t).Resource(engine.OperatorResource).Delete(context.Background(), op, metav1.DeleteOptions{})
	})
	waitOperatorReady(t, op, "True", spec.ReasonRunning, "")
	playMemcached(w)

	w.step("helm upgrade without the rule for pods; the gateway restarts (a running watch keeps its old authorization)")
	helm(t, "upgrade", release, "charts/opgate", "--namespace", gwNS, "-f", withoutPods)
	gw.stop(t)
	gw = startSAGateway("gateway-sa-without-pods")
	missing := fmt.Sprintf(`User "system:serviceaccount:%s:%s" cannot list resource "pods" in API group "" in the namespace %q`, gwNS, release, w.ns)
	waitOperatorReady(t, op, "False", spec.ReasonForbidden, missing)
	waitOperatorEvent(t, op, corev1.EventTypeWarning, spec.ReasonForbidden, missing)

	w.step("helm upgrade with the rule back: the gateway recovers by itself")
	helm(t, "upgrade", release, "charts/opgate", "--namespace", gwNS, "-f", full)
	waitOperatorReady(t, op, "True", spec.ReasonRunning, "")
	playMemcached(w)
	gw.stop(t)
}

// createOperatorFromFile creates the file's WebhookOperator as a cluster
// object, as `kubectl apply -f` would, and returns its name.
func createOperatorFromFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		t.Fatal(err)
	}
	if _, err := dynamicClient(t).Resource(engine.OperatorResource).Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create WebhookOperator %s: %v", u.GetName(), err)
	}
	return u.GetName()
}

// waitOperatorReady waits for the WebhookOperator's Ready condition with
// status, reason and a message containing text.
func waitOperatorReady(t testing.TB, name, status, reason, text string) {
	t.Helper()
	want := fmt.Sprintf("Ready=%s/%s saying %q", status, reason, text)
	Eventually(t, rolloutTimeout, "WebhookOperator "+name+" "+want, func(ctx context.Context) (bool, string, error) {
		u, err := dynamicClient(t).Resource(engine.OperatorResource).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] != spec.ConditionReady {
				continue
			}
			msg, _ := m["message"].(string)
			return m["status"] == status && m["reason"] == reason && strings.Contains(msg, text),
				fmt.Sprintf("Ready=%v/%v %q", m["status"], m["reason"], msg), nil
		}
		return false, "no Ready condition", nil
	})
}

// waitOperatorEvent waits for an Event on the WebhookOperator (its Events
// live in "default") of type and reason whose message contains text.
func waitOperatorEvent(t testing.TB, name, typ, reason, text string) {
	t.Helper()
	Eventually(t, rolloutTimeout, fmt.Sprintf("a %s Event %s on WebhookOperator %s saying %q", typ, reason, name, text), func(ctx context.Context) (bool, string, error) {
		list, err := Clientset(t).CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return false, "", err
		}
		var seen []string
		for _, e := range list.Items {
			if e.InvolvedObject.Kind == spec.Kind && e.Type == typ && e.Reason == reason && strings.Contains(e.Message, text) {
				return true, "", nil
			}
			seen = append(seen, e.Type+"/"+e.Reason+": "+e.Message)
		}
		return false, strings.Join(seen, "; "), nil
	})
}
