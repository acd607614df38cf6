package engine

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opgate/opgate/gateway/watchjson"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	clientfeatures "k8s.io/client-go/features"
	clientfeaturestesting "k8s.io/client-go/features/testing"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// TestInformersReportALostConnectionWithinSeconds: an informer's list and
// watch calls are one request each, so that a connection lost on every
// try reaches health after the gateway's second try (0.1-0.3 s later),
// not after client-go's own 10 retries 1 s apart per call.
func TestInformersReportALostConnectionWithinSeconds(t *testing.T) {
	for _, kind := range []string{"children[0]", "watched"} {
		for _, watchList := range []bool{true, false} {
			// With the watch-list (client-go's default) the reflector
			// opens a watch first; without it, a list.
			t.Run(fmt.Sprintf("%s/watch-list=%v", kind, watchList), func(t *testing.T) {
				clientfeaturestesting.SetFeatureDuringTest(t, clientfeatures.WatchListClient, watchList)
				testReportsALostConnectionWithinSeconds(t, kind)
			})
		}
	}
}

func testReportsALostConnectionWithinSeconds(t *testing.T, role string) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close() // the connection lost on the way
		}
	}))
	defer srv.Close()
	dcfg := dynamic.ConfigFor(&rest.Config{Host: srv.URL})
	dcfg.GroupVersion, dcfg.APIPath = nil, "/unused"
	rc, err := rest.UnversionedRESTClientFor(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	mapping := &meta.RESTMapping{
		Resource:         schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
		GroupVersionKind: deploymentGVK,
		Scope:            meta.RESTScopeNamespace,
	}
	var health watchHealth
	what := "deployments.apps in namespace shop (" + role + ")"
	var inf cache.SharedIndexInformer
	if role == "watched" {
		deps := Deps{Dynamic: dynamic.New(rc), Watcher: watchjson.New(rc, watchjson.Attempts(1))}
		inf = newTrackedInformer(deps, mapping.Resource, "shop", selection{}, what, cache.Indexers{}, &health)
	} else if inf, err = newChildInformer(rc, mapping, "shop", selection{}, what, cache.Indexers{}, &health); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go inf.RunWithContext(ctx)

	deadline := time.Now().Add(5 * time.Second)
	for {
		if name, err, failing := health.failing(); failing {
			if name != what || !connectionFailed(err) {
				t.Errorf("health: %s: %v; want %s failing with the lost connection", name, err, what)
			}
			if n := requests.Load(); n > 3 {
				t.Errorf("%d requests before the failure was reported, want 2 (one per try)", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failure reported after 5 s and %d requests", requests.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
