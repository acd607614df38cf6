package decide

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/spec"
)

// matches applies a callback's `when` filters. Labels and annotations filter
// every event; fields filter updates only, and only when the old essence is
// known (without it, calling is the safe side). The fields compare the old
// and the new essence's values, not the diff's paths, which cannot tell a
// label key with dots from nested keys.
func matches(cb spec.Callback, obj *unstructured.Unstructured, ev spec.Event, old, current map[string]any) bool {
	return FilteredOut(cb, obj, ev, old, current) == ""
}

// FilteredOut names the `when` rule of cb that keeps ev on obj from calling
// it, or is "" when none does (matches; `gateway call` refuses to send what
// it names).
func FilteredOut(cb spec.Callback, obj *unstructured.Unstructured, ev spec.Event, old, current map[string]any) string {
	if rule := objectFilter(cb, obj); rule != "" {
		return rule
	}
	if ev == spec.EventUpdate && cb.When != nil && len(cb.When.Fields) > 0 && old != nil && !essence.FieldsChanged(old, current, cb.When.Fields) {
		return fmt.Sprintf("when.fields %v: none of them changed", cb.When.Fields)
	}
	return ""
}

// matchesObject applies when.labels and when.annotations alone: what the
// object must be like for any call, also a requeued one, which is no change
// for when.fields to filter.
func matchesObject(cb spec.Callback, obj *unstructured.Unstructured) bool {
	return objectFilter(cb, obj) == ""
}

// objectFilter names the when.labels or when.annotations entry obj fails.
func objectFilter(cb spec.Callback, obj *unstructured.Unstructured) string {
	if cb.When == nil {
		return ""
	}
	if k, ok := matchMap(cb.When.Labels, obj.GetLabels()); !ok {
		return fmt.Sprintf("when.labels %s: %s", k, cb.When.Labels[k])
	}
	if k, ok := matchMap(cb.When.Annotations, obj.GetAnnotations()); !ok {
		return fmt.Sprintf("when.annotations %s: %s", k, cb.When.Annotations[k])
	}
	return ""
}

// matchMap says whether have matches want, and else the smallest key that
// fails: Go's map order changes from run to run, and the key is shown
// (`gateway call`). It keeps the minimum as it goes rather than sort: it
// runs for every event of every object.
func matchMap(want, have map[string]string) (string, bool) {
	failed, found := "", false
	for k, v := range want {
		if found && k >= failed {
			continue
		}
		got, ok := have[k]
		var fails bool
		switch v {
		case spec.FilterPresent:
			fails = !ok
		case spec.FilterAbsent:
			fails = ok
		default:
			fails = !ok || got != v
		}
		if fails {
			failed, found = k, true
		}
	}
	return failed, !found
}

// StillCalls reports whether op still calls callback id for event on obj:
// op has the callback, it handles event and, for sync and timer (which
// come by themselves, not for a change), its when.labels and
// when.annotations match obj. A retry record of a call op no longer makes
// (an operator edit took the event from the callback, or a filter no
// longer matches) is owed nothing: no success would ever end it. event ""
// (a record written before events were kept) may be any: it counts.
func StillCalls(op *spec.WebhookOperator, id string, event spec.Event, obj *unstructured.Unstructured) bool {
	if event == "" {
		return true
	}
	for _, cb := range op.Spec.Callbacks {
		if cb.ID != id {
			continue
		}
		if !cb.Handles(event) {
			return false
		}
		if event == spec.EventSync || event == spec.EventTimer {
			return matchesObject(cb, obj)
		}
		return true
	}
	return false
}
