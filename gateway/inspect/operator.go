package inspect

import (
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/spec"
)

// Readiness is an operator's Ready condition.
type Readiness struct {
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// ReadinessOf reads the Ready condition of a WebhookOperator's status
// (as the cluster holds it); without one the operator is not ready,
// reason Unknown: no gateway has reported on it.
func ReadinessOf(status spec.OperatorStatus) Readiness {
	for _, c := range status.Conditions {
		if c.Type == spec.ConditionReady {
			return Readiness{Ready: c.Status == metav1.ConditionTrue, Reason: c.Reason, Message: c.Message}
		}
	}
	return Readiness{Reason: "Unknown", Message: "no gateway reported on this operator"}
}

// Operator is one operator's line and its objects.
type Operator struct {
	Name  string    `json:"name"`
	Watch string    `json:"watch"` // apiVersion/Kind
	Ready Readiness `json:"ready"`
	// Objects is how many objects the operator watches.
	Objects int `json:"objects"`
	// Failing counts the objects with a failing callback: failing,
	// backing off or permanently failed (deleting ones included).
	Failing int `json:"failing"`
	// WaitingOnFinalizer counts deleting objects the operator's finalizer
	// still holds.
	WaitingOnFinalizer int `json:"waitingOnFinalizer"`
	// States counts the objects per State, every State present.
	States map[State]int `json:"states"`
	// Unsettled are the objects that need a look, most serious first.
	Unsettled []Object `json:"unsettled,omitempty"`
}

// Summarize reports on op and the objects of its watched kind; objects op
// does not select (other namespaces, labels) are left out.
func Summarize(op *spec.WebhookOperator, ready Readiness, objects []*unstructured.Unstructured, now time.Time) Operator {
	return summarize(op, ready, objects, now, func(obj *unstructured.Unstructured) decoded { return decode(op, obj) }, nil)
}

// summarize classifies each object op selects once, and hands its line to
// each too when each is not nil.
func summarize(op *spec.WebhookOperator, ready Readiness, objects []*unstructured.Unstructured, now time.Time,
	decodeOf func(*unstructured.Unstructured) decoded, each func(Object)) Operator {
	out := Operator{Name: op.Name, Watch: op.Spec.Watch.APIVersion + "/" + op.Spec.Watch.Kind, Ready: ready, States: map[State]int{}}
	for _, s := range States {
		out.States[s] = 0
	}
	gk := watchedGroupKind(op)
	for _, obj := range objects {
		if obj.GroupVersionKind().GroupKind() != gk || !op.Spec.Watch.Selects(obj) {
			continue
		}
		o := classify(op, obj, decodeOf(obj), now)
		if each != nil {
			each(o)
		}
		out.Objects++
		out.States[o.State]++
		if o.Failure != nil {
			out.Failing++
		}
		if obj.GetDeletionTimestamp() != nil && holdsFinalizer(op, obj) {
			out.WaitingOnFinalizer++
		}
		if o.State.Unsettled() {
			out.Unsettled = append(out.Unsettled, o)
		}
	}
	sort.Slice(out.Unsettled, func(i, j int) bool { return Less(out.Unsettled[i], out.Unsettled[j]) })
	return out
}

// Selects reports whether op watches obj: its kind, spec.watch.namespaces
// and spec.watch.labelSelector, as the gateway's informer selects. An
// unparsable selector selects everything, as the informer then does.
func Selects(op *spec.WebhookOperator, obj *unstructured.Unstructured) bool {
	return obj.GroupVersionKind().GroupKind() == watchedGroupKind(op) && op.Spec.Watch.Selects(obj)
}

func watchedGroupKind(op *spec.WebhookOperator) schema.GroupKind {
	gv, _ := schema.ParseGroupVersion(op.Spec.Watch.APIVersion)
	return gv.WithKind(op.Spec.Watch.Kind).GroupKind()
}
