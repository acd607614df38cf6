package engine

import (
	"crypto/sha256"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/internal/jsonenc"
)

// appliedChildren is what the gateway last applied per child of one
// object, sorted by key. It is kept for every object for the life of the
// process, so it is a slice rather than a map: most objects have one child
// or a few, and a map's smallest table holds eight entries (~0.5 KB per
// object with one child, against ~0.1 KB here).
type appliedChildren []appliedChild

// appliedChild is what the gateway last applied for one child, keyed
// "apiVersion/Kind|name": the digest of the applied content and the
// resourceVersion the API server answered.
type appliedChild struct {
	key             string
	digest          [sha256.Size]byte
	resourceVersion string
}

func (a appliedChildren) find(key string) (int, bool) {
	return slices.BinarySearchFunc(a, key, func(e appliedChild, k string) int { return strings.Compare(e.key, k) })
}

func (a *appliedChildren) set(e appliedChild) {
	if i, ok := a.find(e.key); ok {
		(*a)[i] = e
	} else {
		*a = slices.Insert(*a, i, e)
	}
}

func (a *appliedChildren) forget(key string) {
	if i, ok := a.find(key); ok {
		*a = slices.Delete(*a, i, i+1)
	}
}

// unchangedChild says whether child need not be applied: the same content
// was applied before and the cached child still has the resourceVersion
// that apply produced, so nobody (a user, another controller) changed or
// deleted it since. A cache that has not caught up with the apply yet
// differs too and the child is applied again: cautious, never wrong. body
// is the child's JSON, which the apply sends; sum its digest, to remember
// after applying.
func (m *objectMemory) unchangedChild(key string, child *unstructured.Unstructured, existing childObject) (body []byte, sum *[sha256.Size]byte, fresh bool) {
	body, err := jsonenc.Marshal(child.Object)
	if err != nil {
		return nil, nil, false
	}
	h := sha256.Sum256(body)
	i, ok := m.applied.find(key)
	return body, &h, ok && existing != nil && m.applied[i].digest == h && existing.GetResourceVersion() == m.applied[i].resourceVersion
}

func (m *objectMemory) rememberApplied(key string, sum *[sha256.Size]byte, resourceVersion string) {
	if sum == nil || resourceVersion == "" {
		return
	}
	m.applied.set(appliedChild{key: key, digest: *sum, resourceVersion: resourceVersion})
}

// A pass waits for the caches of the children it applied to catch up
// (childCacheBehind): the child's watch event requeues the parent, and
// childCacheWait is only a backstop. A watch that does not catch up
// within childCacheWaitMax (broken, or refused) is waited for no longer:
// passes go on with the cache as it is, as they would without the wait.
const (
	childCacheWait    = time.Second
	childCacheWaitMax = 5 * time.Second
)

// waitForChildren says whether the pass waits, behind saying whether a
// child's cache is behind its apply now.
func (m *objectMemory) waitForChildren(behind bool, now time.Time) bool {
	if !behind {
		m.childrenBehindSince = 0
		return false
	}
	if m.childrenBehindSince == 0 {
		m.childrenBehindSince = now.UnixNano()
	}
	return now.Sub(time.Unix(0, m.childrenBehindSince)) < childCacheWaitMax
}

// childCacheBehind says whether a child this process applied for the
// object is cached older than the apply answered, as the parent's own
// writes are (objectMemory.writtenRV): its watch event is still to come.
// A pass now would see the child as it was before that apply, or miss it
// among the children (the cache lacks the owner reference or label the
// apply set, or the child itself when the apply made it); a sync digest
// taken over that would call sync again for the gateway's own write. A
// child absent from a cache that has handled a later event of its kind
// (handledRV) was deleted since: not behind.
func (c *Controller) childCacheBehind(parent *unstructured.Unstructured, m *objectMemory) bool {
	for _, a := range m.applied {
		applied, err := strconv.ParseUint(a.resourceVersion, 10, 64)
		if err != nil {
			continue
		}
		ch, ns, key, ok := c.appliedChildKey(parent, a.key)
		if !ok {
			continue
		}
		for informerNS, inf := range ch.informers {
			if informerNS != "" && informerNS != ns {
				continue
			}
			var rv uint64 // how far the cache has the child, or its kind
			if seen := ch.handled[informerNS]; seen != nil {
				rv = seen.Load()
			}
			if o, exists, err := inf.GetIndexer().GetByKey(key); err == nil && exists {
				if acc, err := meta.Accessor(o); err == nil {
					rv, _ = strconv.ParseUint(acc.GetResourceVersion(), 10, 64)
				}
			}
			if rv < applied {
				return true
			}
		}
	}
	return false
}

// appliedChildKey resolves an applied child's key (kindKey of the
// declared kind, "|", the name as nameIn gives it) to its declared kind,
// its namespace and its key in that kind's informer caches.
func (c *Controller) appliedChildKey(parent *unstructured.Unstructured, applied string) (ch childKind, ns, key string, ok bool) {
	for _, ch := range c.children {
		name, found := strings.CutPrefix(applied, kindKey(ch.spec.APIVersion, ch.spec.Kind)+"|")
		switch {
		case !found:
			continue
		case strings.Contains(name, "/"):
			ns, _, _ = strings.Cut(name, "/")
			return ch, ns, name, true // another namespace than the parent's
		case ch.mapping.Scope.Name() == meta.RESTScopeNameNamespace && parent.GetNamespace() != "":
			return ch, parent.GetNamespace(), parent.GetNamespace() + "/" + name, true
		default:
			return ch, "", name, true
		}
	}
	return childKind{}, "", "", false
}

// handledRV is the highest resourceVersion of the events an informer's
// handler was given. The cache holds everything up to it: the handler
// runs after the cache took the event, where the informer's own
// LastSyncResourceVersion moves as the event is read, before the cache
// holds the object. A deletion's event carries the deletion's version.
type handledRV struct{ atomic.Uint64 }

// noting returns h, noting each event's resourceVersion before h has it
// (h may queue a pass that reads this).
func (s *handledRV) noting(h cache.ResourceEventHandler) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			s.note(obj)
			h.OnAdd(obj, initial)
		},
		UpdateFunc: func(old, obj any) {
			s.note(obj)
			h.OnUpdate(old, obj)
		},
		DeleteFunc: func(obj any) {
			s.note(obj)
			h.OnDelete(obj)
		},
	}
}

func (s *handledRV) note(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	rv, err := strconv.ParseUint(acc.GetResourceVersion(), 10, 64)
	if err != nil {
		return
	}
	for {
		cur := s.Load()
		if rv <= cur || s.CompareAndSwap(cur, rv) {
			return
		}
	}
}
