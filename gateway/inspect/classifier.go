package inspect

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/spec"
)

// Classifier is Summarize with a memory, for callers that summarize the
// same caches again and again (every /metrics scrape): an object's state
// annotation and essence are decoded once per resourceVersion, since any
// change to either moves it. Safe for concurrent use.
type Classifier struct {
	mu   sync.Mutex
	byOp map[string]map[types.UID]decodedAt // by operator name
}

type decodedAt struct {
	resourceVersion string
	d               decoded
}

// Summarize is the package's Summarize; what it remembers of op's objects
// is what it saw this time.
func (c *Classifier) Summarize(op *spec.WebhookOperator, ready Readiness, objects []*unstructured.Unstructured, now time.Time) Operator {
	return c.summarize(op, ready, objects, now, nil)
}

// SummarizeObjects is Summarize that also returns the line of every object
// it counted (those op selects), in the order given: a page listing them
// classifies each object once.
func (c *Classifier) SummarizeObjects(op *spec.WebhookOperator, ready Readiness, objects []*unstructured.Unstructured, now time.Time) (Operator, []Object) {
	lines := make([]Object, 0, len(objects))
	out := c.summarize(op, ready, objects, now, func(o Object) { lines = append(lines, o) })
	return out, lines
}

func (c *Classifier) summarize(op *spec.WebhookOperator, ready Readiness, objects []*unstructured.Unstructured, now time.Time, each func(Object)) Operator {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.byOp[op.Name]
	after := make(map[types.UID]decodedAt, len(before))
	out := summarize(op, ready, objects, now, func(obj *unstructured.Unstructured) decoded {
		rv := obj.GetResourceVersion()
		if e, ok := before[obj.GetUID()]; ok && rv != "" && e.resourceVersion == rv {
			after[obj.GetUID()] = e
			return e.d
		}
		d := decode(op, obj)
		if rv != "" {
			after[obj.GetUID()] = decodedAt{resourceVersion: rv, d: d}
		}
		return d
	}, each)
	if c.byOp == nil {
		c.byOp = map[string]map[types.UID]decodedAt{}
	}
	c.byOp[op.Name] = after
	return out
}

// Forget drops what c remembers of operators not named in keep.
func (c *Classifier) Forget(keep func(operator string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.byOp {
		if !keep(name) {
			delete(c.byOp, name)
		}
	}
}
