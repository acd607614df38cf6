package engine

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// BenchmarkCachedChildrenHeap is the live heap of 10 000 cached Deployment
// children (B/child), indexed as the child informers index them, decoded
// raw and as the dynamic informer decoded them (maps, managedFields
// dropped). Each object is decoded from its own watch event, so nothing is
// shared between objects that the API server would not share either.
func BenchmarkCachedChildrenHeap(b *testing.B) {
	const n = 10000
	for name, ns := range map[string]kruntime.NegotiatedSerializer{
		"raw":          newRawCodec(deploymentGVK, "deployments.apps"),
		"unstructured": dynamic.ConfigFor(&rest.Config{}).NegotiatedSerializer,
	} {
		b.Run(name, func(b *testing.B) {
			info := ns.SupportedMediaTypes()[0]
			for b.Loop() {
				idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{
					cache.NamespaceIndex: cache.MetaNamespaceIndexFunc, ownerIndex: indexByOwner})
				before := liveHeap()
				for i := range n {
					js := strings.NewReplacer(`"name":"m00042"`, fmt.Sprintf(`"name":"m%05d"`, i),
						"5b7c1a2e0f42", fmt.Sprintf("%012d", i), "000000000042", fmt.Sprintf("%012d", i)).Replace(deploymentJSON)
					obj, err := kruntime.Decode(info.Serializer, []byte(js))
					if err != nil {
						b.Fatal(err)
					}
					if obj, err = dropManagedFieldsObject(obj); err != nil {
						b.Fatal(err)
					}
					if err := idx.Add(obj); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(liveHeap()-before)/n, "B/child")
				runtime.KeepAlive(idx)
			}
		})
	}
}

func dropManagedFieldsObject(obj any) (kruntime.Object, error) {
	out, err := dropManagedFields(obj)
	if err != nil {
		return nil, err
	}
	return out.(kruntime.Object), nil
}

func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
