package watchjson

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// deploymentEvent is a watch event of a Deployment as the bench's children
// look (managedFields included, as the API server sends them).
const deploymentEvent = `{"type":"MODIFIED","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"mc-00001","namespace":"gateway-fast-backlog","uid":"0b7e0f3c-6a43-4d8e-9a57-2b1a0b6f1e11","resourceVersion":"123456","generation":2,"creationTimestamp":"2026-11-30T18:05:06Z","labels":{"app":"memcached","bench":"mc-00001","opgate.dev/operator":"bench"},"annotations":{"deployment.kubernetes.io/revision":"1"},"ownerReferences":[{"apiVersion":"bench.opgate.dev/v1","kind":"Memcached","name":"mc-00001","uid":"5d3b1c2e-7f8a-4b9c-8d0e-1f2a3b4c5d6e","controller":true,"blockOwnerDeletion":true}],"managedFields":[{"manager":"opgate","operation":"Apply","apiVersion":"apps/v1","time":"2026-11-30T18:05:07Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{},"f:bench":{},"f:opgate.dev/operator":{}},"f:ownerReferences":{"k:{\"uid\":\"5d3b1c2e-7f8a-4b9c-8d0e-1f2a3b4c5d6e\"}":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{},"f:bench":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"memcached\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":11211,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}}]},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"memcached","bench":"mc-00001"}},"template":{"metadata":{"labels":{"app":"memcached","bench":"mc-00001"}},"spec":{"containers":[{"name":"memcached","image":"memcached:1.6","ports":[{"containerPort":11211,"protocol":"TCP"}],"resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler"}},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}},"revisionHistoryLimit":10,"progressDeadlineSeconds":600},"status":{}}}`

// BenchmarkWatchEvent decodes b.N Deployment events from one watch stream
// over HTTP: client-go's dynamic watch against Watcher, whole and without
// managedFields.
func BenchmarkWatchEvent(b *testing.B) {
	for _, impl := range []string{"clientGo", "watchjson", "watchjsonDropManagedFields"} {
		b.Run(impl, func(b *testing.B) {
			body := strings.Repeat(deploymentEvent+"\n", b.N)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(body))
			}))
			defer srv.Close()
			var opts []Option
			if impl == "watchjsonDropManagedFields" {
				opts = append(opts, DropManagedFields())
			}
			dyn, wj := clients(b, srv, opts...)
			b.ReportAllocs()
			b.ResetTimer()
			var w watch.Interface
			var err error
			if impl == "clientGo" {
				w, err = dyn.Resource(widgets).Namespace("ns").Watch(context.Background(), metav1.ListOptions{})
			} else {
				w, err = wj.Watch(context.Background(), widgets, "ns", metav1.ListOptions{})
			}
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for ev := range w.ResultChan() {
				if ev.Type != watch.Modified {
					b.Fatalf("event %d: %s", n, ev.Type)
				}
				n++
			}
			if n != b.N {
				b.Fatalf("%d events, want %d", n, b.N)
			}
		})
	}
}
