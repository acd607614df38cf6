package spec

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"
)

// callbacks checks what each callback means together with its events.
func (v *validator) callbacks(op *WebhookOperator) {
	opRetry := RetrySpec{}
	if op.Spec.Retry != nil {
		opRetry = *op.Spec.Retry
	}
	ids := map[string]int{}
	for i, c := range op.Spec.Callbacks {
		p := fmt.Sprintf("/spec/callbacks/%d", i)
		if c.ID != "" {
			// The id keys the callback's retry state in the state annotation.
			if j, dup := ids[c.ID]; dup {
				v.addf(p+"/id", "duplicate callback id %q (also callbacks[%d])", c.ID, j)
			} else {
				ids[c.ID] = i
			}
		}
		for j, e := range c.Events {
			if !e.IsValid() {
				v.addf(fmt.Sprintf("%s/events/%d", p, j), "unknown event %q", e)
			}
		}
		v.timing(p, c)
		v.when(p+"/when", c)
		v.handler(p+"/handler", c.Handler)
		v.retry(p+"/retry", c.Retry, opRetry)
	}
}

// timing checks interval, initialDelay and idle, which only a timer has.
func (v *validator) timing(p string, c Callback) {
	if !c.Handles(EventTimer) {
		for _, f := range []struct {
			name string
			d    *Duration
		}{{"interval", c.Interval}, {"initialDelay", c.InitialDelay}, {"idle", c.Idle}} {
			if f.d != nil {
				v.addf(p+"/"+f.name, "only timer callbacks take %s", f.name)
			}
		}
		return
	}
	if c.Interval == nil {
		v.addf(p, "a timer callback needs interval")
	}
	v.positive(p+"/interval", c.Interval)
}

// when checks a callback's filters.
func (v *validator) when(p string, c Callback) {
	w := c.When
	if w == nil {
		return
	}
	// A field filter says "this changed", which only an update has; mixing
	// it with other events would leave its meaning for them unclear.
	if len(w.Fields) > 0 && !slices.Equal(c.Events, []Event{EventUpdate}) {
		v.addf(p+"/fields", "only a callback on update alone may filter by fields; give the other events their own callback")
	}
	for i, f := range w.Fields {
		if err := checkFieldPath(f); err != nil {
			v.addf(fmt.Sprintf("%s/fields/%d", p, i), "%q: %v", f, err)
		}
	}
	for key, value := range w.Labels {
		lp := joinPointer(p+"/labels", key)
		v.labelKey(lp, key)
		if value != FilterPresent && value != FilterAbsent {
			v.labelValue(lp, value)
		}
	}
	for key := range w.Annotations {
		for _, msg := range validation.IsQualifiedName(key) {
			v.addf(joinPointer(p+"/annotations", key), "annotation key %q: %s", key, msg)
		}
	}
}

// checkFieldPath checks a dotted path of when.fields, and that a change
// there can fire an update at all (docs/contract.md: the essence is spec, labels
// and annotations; status and the rest of metadata are left out).
func checkFieldPath(f string) error {
	segments := strings.Split(f, ".")
	for _, s := range segments {
		if s == "" || strings.IndexFunc(s, unicode.IsSpace) >= 0 {
			return fmt.Errorf("must be a dotted path such as spec.size, without empty parts or spaces")
		}
	}
	switch segments[0] {
	case "status":
		return fmt.Errorf("status changes never fire update; a sync callback sees them")
	case "metadata":
		if len(segments) < 2 || (segments[1] != "labels" && segments[1] != "annotations") {
			return fmt.Errorf("of metadata only labels and annotations fire update")
		}
	case "apiVersion", "kind":
		return fmt.Errorf("%s never changes", segments[0])
	}
	return nil
}
