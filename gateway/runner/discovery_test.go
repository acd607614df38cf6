package runner

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// discoveryServer serves the discovery of a cluster whose example.com/v1
// Bolt is served once served is set, and counts the GETs per path.
type discoveryServer struct {
	served atomic.Bool
	mu     sync.Mutex
	gets   map[string]int
}

func (d *discoveryServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.gets[r.URL.Path]++
	d.mu.Unlock()
	v1 := metav1.GroupVersionForDiscovery{GroupVersion: "example.com/v1", Version: "v1"}
	var body any
	switch {
	case r.URL.Path == "/api":
		body = metav1.APIVersions{Versions: []string{"v1"}}
	case r.URL.Path == "/api/v1":
		body = metav1.APIResourceList{GroupVersion: "v1"}
	case r.URL.Path == "/apis" && d.served.Load():
		body = metav1.APIGroupList{Groups: []metav1.APIGroup{{Name: "example.com", Versions: []metav1.GroupVersionForDiscovery{v1}, PreferredVersion: v1}}}
	case r.URL.Path == "/apis":
		body = metav1.APIGroupList{}
	case r.URL.Path == "/apis/example.com/v1" && d.served.Load():
		body = metav1.APIResourceList{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
			{Name: "bolts", Kind: "Bolt", Namespaced: true, Verbs: metav1.Verbs{"get", "list", "watch"}},
			{Name: "bolts/scale", Kind: "Scale", Namespaced: true, Verbs: metav1.Verbs{"get", "patch"}}}}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func (d *discoveryServer) count(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gets[path]
}

// A CRD created again is served a moment after the gateway sees it; a
// mapper that read discovery in that moment must not miss the kind for
// ever. A miss asks the API server about that group-version alone, at most
// once per interval, and reads all of discovery again only once it serves
// the kind.
func TestMapperFindsAKindServedAfterItReadDiscovery(t *testing.T) {
	api, mapper, now := newTestMapper(t)
	bolt := schema.GroupKind{Group: "example.com", Kind: "Bolt"}

	_, err := mapper.RESTMapping(bolt, "v1")
	if err == nil {
		t.Fatal("a kind not served yet was mapped")
	}
	api.served.Store(true)
	for _, st := range []struct {
		after              time.Duration
		wantFound          bool
		wantGroupVersionGs int // GETs of /apis/example.com/v1 so far
		wantFullReads      int // GETs of /apis so far
	}{
		{0, false, 1, 1},               // read once at first, group-version asked on the miss
		{time.Second, false, 1, 1},     // asked a moment ago: the miss is taken as is
		{5 * time.Second, true, 3, 2},  // asked again: served, so discovery is read again
		{10 * time.Second, true, 3, 2}, // found in the cache
	} {
		*now = now.Add(st.after)
		if st.after > 0 {
			_, err = mapper.RESTMapping(bolt, "v1")
		}
		if found := err == nil; found != st.wantFound {
			t.Errorf("%v later: found = %v (%v), want %v", st.after, found, err, st.wantFound)
		}
		if n := api.count("/apis/example.com/v1"); n != st.wantGroupVersionGs {
			t.Errorf("%v later: %d GETs of the group-version, want %d", st.after, n, st.wantGroupVersionGs)
		}
		if n := api.count("/apis"); n != st.wantFullReads {
			t.Errorf("%v later: %d reads of all of discovery, want %d", st.after, n, st.wantFullReads)
		}
	}
}

// The asking is per kind: an operator waiting for a kind not served (Nut)
// misses it every few seconds, and must not use up the asking of another
// kind of the group-version (Bolt, its CRD created again). A kind the
// group-version lists only for a subresource (bolts/scale is a Scale) is
// no resource: asking about it never resets the mapper.
func TestMapperAsksAboutEachMissedKindOnItsOwn(t *testing.T) {
	api, mapper, now := newTestMapper(t)
	kind := func(k string) schema.GroupKind { return schema.GroupKind{Group: "example.com", Kind: k} }
	if _, err := mapper.RESTMapping(kind("Bolt"), "v1"); err == nil {
		t.Fatal("a kind not served yet was mapped")
	}
	api.served.Store(true)
	*now = now.Add(5 * time.Second)
	if _, err := mapper.RESTMapping(kind("Nut"), "v1"); err == nil {
		t.Fatal("a kind never served was mapped")
	}
	if _, err := mapper.RESTMapping(kind("Bolt"), "v1"); err != nil {
		t.Errorf("Bolt, served, missed just after Nut was asked about: %v", err)
	}
	full := api.count("/apis")
	for range 3 {
		*now = now.Add(5 * time.Second)
		if _, err := mapper.RESTMapping(kind("Scale"), "v1"); err == nil {
			t.Error("a subresource's kind was mapped")
		}
	}
	if n := api.count("/apis") - full; n != 0 {
		t.Errorf("%d reads of all of discovery while a subresource's kind was missed, want none", n)
	}
}

// newTestMapper is a mapper that asks again every 5 s, by now (a clock the
// test moves), over the discovery of a discoveryServer.
func newTestMapper(t *testing.T) (*discoveryServer, *missCheckingMapper, *time.Time) {
	t.Helper()
	api := &discoveryServer{gets: map[string]int{}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	disco, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	return api, newMissCheckingMapper(restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)), disco, 5*time.Second, func() time.Time { return now }), &now
}
