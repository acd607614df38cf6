package spec

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Selects reports whether obj, of the watched kind, is in the watch's
// namespaces and matches its label selector. An unparsable selector selects
// everything, as the informer built from it then does.
func (w WatchSpec) Selects(obj metav1.Object) bool {
	if ns := obj.GetNamespace(); ns != "" && len(w.Namespaces) > 0 && !slices.Contains(w.Namespaces, ns) {
		return false
	}
	if w.LabelSelector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(w.LabelSelector); err == nil {
			return sel.Matches(labels.Set(obj.GetLabels()))
		}
	}
	return true
}
