package apply

import (
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/opgate/opgate/gateway/failure"
)

// unreachableMapper is the gateway's REST mapper pointed at an address
// where no API server listens any more.
func unreachableMapper(t *testing.T) meta.RESTMapper {
	t.Helper()
	srv := httptest.NewServer(nil)
	host := srv.URL
	srv.Close()
	disco, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	return restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
}

func TestMappingTellsAnUnreachableAPIServerFromAMissingKind(t *testing.T) {
	known := meta.NewDefaultRESTMapper(nil)
	known.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	tests := []struct {
		name       string
		mapper     meta.RESTMapper
		kind       string
		wantReason string
		wantText   string
	}{
		{"a kind the API server lacks", known, "Memcached", "KindNotFound", "not found on the API server"},
		{"an API server that does not answer", unreachableMapper(t), "ConfigMap", "APIServerUnreachable", "cannot reach the API server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Mapping(tt.mapper, "v1", tt.kind)
			f := failure.As(err)
			if err == nil || f.Class != failure.Temporary || f.Reason != tt.wantReason || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %v (reason %q), want a temporary %s saying %q", err, f.Reason, tt.wantReason, tt.wantText)
			}
		})
	}
	if _, err := Mapping(known, "v1", "ConfigMap"); err != nil {
		t.Errorf("a known kind: %v", err)
	}
}
