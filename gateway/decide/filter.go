package decide

import (
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
	if !matchesObject(cb, obj) {
		return false
	}
	if ev == spec.EventUpdate && cb.When != nil && len(cb.When.Fields) > 0 && old != nil {
		return essence.FieldsChanged(old, current, cb.When.Fields)
	}
	return true
}

// matchesObject applies when.labels and when.annotations alone: what the
// object must be like for any call, also a requeued one, which is no change
// for when.fields to filter.
func matchesObject(cb spec.Callback, obj *unstructured.Unstructured) bool {
	if cb.When == nil {
		return true
	}
	return matchMap(cb.When.Labels, obj.GetLabels()) && matchMap(cb.When.Annotations, obj.GetAnnotations())
}

func matchMap(want, have map[string]string) bool {
	for k, v := range want {
		got, ok := have[k]
		switch v {
		case spec.FilterPresent:
			if !ok {
				return false
			}
		case spec.FilterAbsent:
			if ok {
				return false
			}
		default:
			if !ok || got != v {
				return false
			}
		}
	}
	return true
}
