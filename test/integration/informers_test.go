package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// A kind may be watched twice by one operator: here ConfigMaps as children
// and as related objects, each informer with its own selector. Both must
// run: a sync must see the child it made and the related object.
func TestKindWatchedAsChildAndRelatedSeesBoth(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Event != callbacks.EventSync {
			return 200, nil
		}
		child := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": req.Object.GetName() + "-config"}}
		return 200, map[string]any{"children": []any{child}}
	})
	startGateway(t, operatorFor(t, "twice", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}}
		s.Related = []spec.RelatedSpec{{APIVersion: "v1", Kind: "ConfigMap", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "settings"}}}}
		s.ResyncPeriod = &spec.Duration{Duration: time.Second} // a second sync shows what the first made
		s.Callbacks = []spec.Callback{{ID: "sync", Events: []spec.Event{spec.EventSync}}}
	}))
	settings := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns, Labels: map[string]string{"role": "settings"}}}
	if _, err := kube(t).CoreV1().ConfigMaps(ns).Create(context.Background(), settings, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createWidget(t, ns, "example", 1)

	eventually(t, 30*time.Second, func() error {
		calls := h.calls("sync")
		if len(calls) == 0 {
			return fmt.Errorf("no sync yet")
		}
		last := calls[len(calls)-1]
		if _, ok := last.Children["v1/ConfigMap"]["example-config"]; !ok {
			return fmt.Errorf("sync children = %v, want its own ConfigMap example-config", namesOf(last.Children))
		}
		if _, ok := last.Related["v1/ConfigMap"]["settings"]; !ok {
			return fmt.Errorf("sync related = %v, want the ConfigMap settings", namesOf(last.Related))
		}
		return nil
	})
}

// namesOf lists a request map's objects as kind/name.
func namesOf(m map[string]map[string]*unstructured.Unstructured) []string {
	var out []string
	for kind, byName := range m {
		for name := range byName {
			out = append(out, kind+"/"+name)
		}
	}
	return out
}
