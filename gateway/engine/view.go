package engine

import (
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/opgate/opgate/gateway/spec"
)

// OperatorView is a read-only look at one operator the manager runs, taken
// from its informer caches: reading it costs the API server nothing.
type OperatorView struct {
	Operator *spec.WebhookOperator
	// Ready, Reason and Message are the operator's health (see Health);
	// an operator whose controller is not built yet is not ready, for the
	// reason it last reported (a kind missing, a Secret unreadable, ...).
	Ready   bool
	Reason  string
	Message string
	// Synced: its caches synced and its workers started, so Objects are
	// what the caches hold; before, no count of its objects is known.
	Synced bool
	// Objects are the watched objects in the cache, shared with it: never
	// modify them.
	Objects []*unstructured.Unstructured
}

// View returns every operator the manager runs, sorted by name, with its
// watched objects from the informer cache.
func (m *Manager) View() []OperatorView {
	m.mu.Lock()
	running := make([]*runningOperator, 0, len(m.running))
	for _, r := range m.running {
		running = append(running, r)
	}
	m.mu.Unlock()
	out := make([]OperatorView, 0, len(running))
	for _, r := range running {
		r.mu.Lock()
		c, reason, msg := r.controller, r.reason, r.message
		r.mu.Unlock()
		v := OperatorView{Operator: r.op, Reason: spec.ReasonCacheNotSynced, Message: "starting"}
		if reason != "" {
			v.Reason, v.Message = reason, msg
		}
		if c != nil {
			v.Ready, v.Reason, v.Message = c.Health()
			v.Synced = c.running.Load()
			if c.parent != nil && c.parent.informers != nil {
				v.Objects = c.parent.list("", labels.Everything())
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Operator.Name < out[j].Operator.Name })
	return out
}

// View is the manager's view of the registered operators.
func (r *Registry) View() []OperatorView { return r.mgr.View() }
