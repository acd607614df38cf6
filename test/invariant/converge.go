package invariant

import (
	"encoding/json"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
)

// checkStatus: the object's status must hold the last status patch the
// handler answered (an answer with an error counts too: the gateway applies
// its status), every field of it, with null meaning absent.
func checkStatus(o *ObjectReport, calls []Call, live *unstructured.Unstructured) {
	var last *Call
	for i := range calls {
		c := &calls[i]
		if c.Status != nil && c.Outcome != Abandoned && c.Outcome != Unreadable && (last == nil || c.Seq > last.Seq) {
			last = c
		}
	}
	if last == nil {
		return
	}
	status, _, _ := unstructured.NestedMap(live.Object, "status")
	if path, ok := holds(status, last.Status, "status"); !ok {
		o.Unconverged = true
		o.problem("%s differs from the last answer (%s %s, call %d)", path, last.Event, last.Callback, last.Seq)
	}
}

// holds reports whether have contains every field of the merge patch want,
// and otherwise the first path that differs.
func holds(have, want map[string]any, prefix string) (string, bool) {
	for k, wv := range want {
		path := prefix + "." + k
		hv, present := have[k]
		if wv == nil {
			if present && hv != nil {
				return path, false
			}
			continue
		}
		if wm, ok := wv.(map[string]any); ok {
			hm, _ := hv.(map[string]any)
			if p, ok := holds(hm, wm, path); !ok {
				return p, false
			}
			continue
		}
		if !sameJSON(hv, wv) {
			return fmt.Sprintf("%s (have %v, want %v)", path, hv, wv), false
		}
	}
	return "", true
}

// sameJSON compares values by their JSON encoding, so that int64 from the
// API server and float64 from a decoded answer are equal.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return reflect.DeepEqual(a, b)
	}
	return string(ja) == string(jb)
}

// checkChildren: a live parent must own every child of the last answer
// that listed children (missing otherwise); a child it owns beyond them is
// an orphan when that answer was a sync, which prunes. A deleted parent
// must own nothing any more, except, without a garbage collector, children
// only the collector would delete.
func checkChildren(o *ObjectReport, calls []Call, live *unstructured.Unstructured, deleted bool, children []*unstructured.Unstructured, noGC bool) {
	if live == nil || deleted {
		for _, ch := range children {
			if noGC && collectedByGC(ch) {
				continue
			}
			o.Orphans = append(o.Orphans, refOfChild(ch).String())
		}
		return
	}
	var last *Call
	for i := range calls {
		c := &calls[i]
		if c.HasChildren && delivered(*c) && (last == nil || c.Seq > last.Seq) {
			last = c
		}
	}
	if last == nil {
		return
	}
	present := make([]ChildRef, 0, len(children))
	for _, ch := range children {
		present = append(present, refOfChild(ch))
	}
	for _, want := range last.Children {
		if !containsChild(present, want, live.GetNamespace()) {
			o.Missing = append(o.Missing, want.String())
		}
	}
	if last.Event != callbacks.EventSync {
		return
	}
	for _, got := range present {
		if !containsWanted(last.Children, got, live.GetNamespace()) {
			o.Orphans = append(o.Orphans, got.String())
		}
	}
}

func containsChild(present []ChildRef, want ChildRef, ns string) bool {
	for _, got := range present {
		if sameChild(want, ns, got) {
			return true
		}
	}
	return false
}

func containsWanted(wanted []ChildRef, got ChildRef, ns string) bool {
	for _, want := range wanted {
		if sameChild(want, ns, got) {
			return true
		}
	}
	return false
}

// orphansWithoutHistory adds children whose parent the test never wrote
// (created before the history began, say) and that no live parent owns.
func (r *Report) orphansWithoutHistory(history map[types.UID][]Change, parents map[types.UID]*unstructured.Unstructured, owned map[types.UID][]*unstructured.Unstructured, noGC bool) {
	for uid, children := range owned {
		if _, known := history[uid]; known {
			continue
		}
		if _, alive := parents[uid]; alive {
			continue
		}
		for _, ch := range children {
			if noGC && collectedByGC(ch) {
				continue
			}
			r.UnknownOrphans = append(r.UnknownOrphans, fmt.Sprintf("%s (owner %s)", refOfChild(ch), uid))
			r.Orphans++
		}
	}
}
