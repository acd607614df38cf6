package engine

import (
	"crypto/sha256"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
