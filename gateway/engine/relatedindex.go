package engine

import (
	"fmt"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/opgate/opgate/gateway/jsontemplate"
)

// relatedIndex indexes parents by the label a related object must carry to
// be theirs: "<related kind #>/<key>=<rendered value>" for the first
// templated matchLabels entry of each related selector. A related object's
// event then finds its candidate parents by its own label instead of
// rendering every parent's selector.
const relatedIndex = "opgate.dev/related"

// templates caches parsed selector templates: each value is parsed once,
// not once per parent and event. Safe for concurrent use.
type templates struct{ m sync.Map } // string → *jsontemplate.Template or error

func (t *templates) render(s string, parent *unstructured.Unstructured) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	v, ok := t.m.Load(s)
	if !ok {
		tp, err := jsontemplate.Parse(s)
		if err != nil {
			v = err
		} else {
			v = tp
		}
		t.m.Store(s, v)
	}
	tp, ok := v.(*jsontemplate.Template)
	if !ok {
		return "", v.(error)
	}
	return tp.Render(parent.Object)
}

// renderSelector expands Go templates over the parent ("{{ .metadata.name }}")
// in a related selector's values.
func (t *templates) renderSelector(ls *metav1.LabelSelector, parent *unstructured.Unstructured) (labels.Selector, error) {
	if ls == nil {
		return labels.Everything(), nil
	}
	out := ls.DeepCopy()
	for k, v := range out.MatchLabels {
		r, err := t.render(v, parent)
		if err != nil {
			return nil, fmt.Errorf("matchLabels[%s]: %w", k, err)
		}
		out.MatchLabels[k] = r
	}
	for i := range out.MatchExpressions {
		for j, v := range out.MatchExpressions[i].Values {
			r, err := t.render(v, parent)
			if err != nil {
				return nil, fmt.Errorf("matchExpressions[%d].values[%d]: %w", i, j, err)
			}
			out.MatchExpressions[i].Values[j] = r
		}
	}
	return metav1.LabelSelectorAsSelector(out)
}

// indexKey is the label key of a related selector that relatedIndex uses:
// the smallest templated matchLabels key; "" when there is none (a
// selector without templates, or with templates only in expressions),
// and then every parent in the namespace (see parentsNamespace) is a
// candidate.
func indexKey(ls *metav1.LabelSelector) string {
	if ls == nil {
		return ""
	}
	best := ""
	for k, v := range ls.MatchLabels {
		if strings.Contains(v, "{{") && (best == "" || k < best) {
			best = k
		}
	}
	return best
}

func relatedIndexValue(i int, key, value string) string {
	return fmt.Sprintf("%d/%s=%s", i, key, value)
}

// indexByRelated is the parent informer's relatedIndex function.
func (c *Controller) indexByRelated(obj any) ([]string, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	var out []string
	for i, rel := range c.related {
		key := indexKey(rel.spec.LabelSelector)
		if key == "" {
			continue
		}
		v, err := c.templates.render(rel.spec.LabelSelector.MatchLabels[key], u)
		if err != nil {
			continue // cannot be selected by this kind; reported by its pass
		}
		out = append(out, relatedIndexValue(i, key, v))
	}
	return out, nil
}

// relatedNamespace is the namespace parent's related objects of kind rel
// are listed in: the parent's own, or every one ("") when rel is
// cluster-scoped (its objects have no namespace) or the parent is (its
// namespace is "", so its selector picks objects in every watched one).
func relatedNamespace(rel relatedKind, parent *unstructured.Unstructured) string {
	if clusterScoped(rel.mapping) {
		return metav1.NamespaceAll
	}
	return parent.GetNamespace()
}

// parentsNamespace is relatedNamespace the other way round: the namespace
// of the parents whose related objects may include u, "" for every one:
// u's own, none for a cluster-scoped u (every parent) or a cluster-scoped
// parent kind.
func (c *Controller) parentsNamespace(u *unstructured.Unstructured) string {
	if clusterScoped(c.parent.mapping) {
		return metav1.NamespaceAll
	}
	return u.GetNamespace()
}

// enqueueRelatedParents enqueues every parent whose related selector
// matches a changed related object.
func (c *Controller) enqueueRelatedParents(obj any) {
	u, ok := asUnstructured(obj)
	if !ok {
		return
	}
	gk := u.GroupVersionKind().GroupKind()
	set := labels.Set(u.GetLabels())
	ns := c.parentsNamespace(u)
	for i, rel := range c.related {
		if rel.mapping.GroupVersionKind.GroupKind() != gk {
			continue
		}
		var candidates []*unstructured.Unstructured
		if key := indexKey(rel.spec.LabelSelector); key != "" {
			v, has := set[key]
			if !has {
				continue // no parent's rendered selector can match
			}
			for _, p := range c.parent.byIndex(relatedIndex, relatedIndexValue(i, key, v)) {
				if ns == metav1.NamespaceAll || p.GetNamespace() == ns {
					candidates = append(candidates, p)
				}
			}
		} else {
			candidates = c.parent.list(ns, labels.Everything())
		}
		for _, parent := range candidates {
			sel, err := c.templates.renderSelector(rel.spec.LabelSelector, parent)
			if err == nil && sel.Matches(set) {
				c.enqueueObject(parent)
			}
		}
	}
}

// enqueueRelatedChange enqueues the parents of a related object before and
// after a change, so a parent whose related object left its selection
// notices too.
func (c *Controller) enqueueRelatedChange(old, cur any) {
	c.enqueueRelatedParents(old)
	c.enqueueRelatedParents(cur)
}
