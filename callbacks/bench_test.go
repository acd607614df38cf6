package callbacks

import "testing"

// memcachedAnswer is what a memcached-like handler answers: one Deployment
// child and a status.
const memcachedAnswer = `{"children":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"m00042","labels":{"app":"memcached","bench":"m00042"}},` +
	`"spec":{"replicas":3,"selector":{"matchLabels":{"app":"memcached","bench":"m00042"}},"template":{"metadata":{"labels":{"app":"memcached","bench":"m00042"}},` +
	`"spec":{"containers":[{"name":"memcached","image":"memcached:1.6","ports":[{"containerPort":11211}]}]}}}}],` +
	`"status":{"deploymentName":"m00042","observedSize":3}}`

// BenchmarkDecodeResponse checks a memcached-like answer against the
// contract and decodes it.
func BenchmarkDecodeResponse(b *testing.B) {
	body := []byte(memcachedAnswer)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := DecodeResponse(body)
		if err != nil || resp.Children == nil {
			b.Fatal(err)
		}
	}
}
