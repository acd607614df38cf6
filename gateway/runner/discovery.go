package runner

import (
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// missRecheck is how often a kind the mapper misses is asked about again:
// the API server serves a new CRD within moments of creating it.
const missRecheck = 5 * time.Second

// missCheckingMapper is a REST mapper that does not believe its cache's
// misses for ever. A discovery mapper reads discovery once and again only
// after a Reset; a CRD created again, seen by its informer (which resets
// the mapper) a moment before the API server serves it, is missed until
// the next Reset if the mapper read discovery in that moment. On a miss
// this one asks the API server about that kind's group-version alone, at
// most once per interval per kind (an operator waiting for one kind of a
// group-version must not use up the asking of another), and resets the
// mapper once the kind is served: a kind really absent costs one small
// request per interval, never a read of all of discovery. It is also how
// an operator waiting for its kind starts once the kind's CRD is created.
type missCheckingMapper struct {
	meta.ResettableRESTMapper
	live  discovery.DiscoveryInterface // uncached
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	asked map[schema.GroupVersionKind]time.Time
}

func newMissCheckingMapper(m meta.ResettableRESTMapper, live discovery.DiscoveryInterface, every time.Duration, now func() time.Time) *missCheckingMapper {
	return &missCheckingMapper{ResettableRESTMapper: m, live: live, every: every, now: now, asked: map[schema.GroupVersionKind]time.Time{}}
}

// RESTMapping maps gk at the first of versions, asking the API server
// again on a miss (see missCheckingMapper).
func (m *missCheckingMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	mapping, err := m.ResettableRESTMapper.RESTMapping(gk, versions...)
	if err == nil || !meta.IsNoMatchError(err) || len(versions) == 0 || !m.servedSince(gk.WithVersion(versions[0])) {
		return mapping, err
	}
	m.Reset()
	return m.ResettableRESTMapper.RESTMapping(gk, versions...)
}

// servedSince says whether the API server serves gvk as a resource,
// unless gvk was asked about less than an interval ago. A subresource's
// kind (deployments/scale is a Scale) is no resource the mapper maps.
func (m *missCheckingMapper) servedSince(gvk schema.GroupVersionKind) bool {
	m.mu.Lock()
	now := m.now()
	if last, ok := m.asked[gvk]; ok && now.Sub(last) < m.every {
		m.mu.Unlock()
		return false
	}
	m.asked[gvk] = now
	m.mu.Unlock()
	list, err := m.live.ServerResourcesForGroupVersion(gvk.GroupVersion().String())
	if err != nil {
		return false // not served (404), or unknown: the next miss asks again
	}
	for _, r := range list.APIResources {
		if r.Kind == gvk.Kind && !strings.Contains(r.Name, "/") {
			return true
		}
	}
	return false
}
