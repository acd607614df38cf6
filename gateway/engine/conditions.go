package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/opgate/opgate/gateway/inspect"
	"github.com/opgate/opgate/gateway/spec"
)

// ConditionReconciled is the condition the gateway sets on watched objects
// of an operator with status.conditions: true.
const ConditionReconciled = "Reconciled"

// ownsConditions: the operator asked the gateway to keep
// status.observedGeneration and the Reconciled condition on its objects.
// Then the statuses handlers answer in a pass are applied to the pass's
// copy and written once, at its end, together with the gateway's fields.
func (c *Controller) ownsConditions() bool {
	return c.op.Spec.Status != nil && c.op.Spec.Status.Conditions
}

// statusBuffer is what a pass of such an operator owes the status.
type statusBuffer struct {
	base map[string]any // the status before the pass's first change
	held bool           // base is set
}

// deferStatus applies a handler's status patch to the pass's copy only.
func (c *Controller) deferStatus(p *pass, patch map[string]any) error {
	current, _, _ := unstructured.NestedMap(p.obj.Object, "status")
	if !p.status.held {
		p.status.base, p.status.held = current, true
	}
	merged, err := mergeJSON(current, patch)
	if err != nil {
		return fmt.Errorf("merge status: %w", err)
	}
	p.obj = p.obj.DeepCopy()
	if err := unstructured.SetNestedMap(p.obj.Object, merged, "status"); err != nil {
		return fmt.Errorf("merge status: %w", err)
	}
	return nil
}

// flushStatus writes, in one merge patch, the handlers' statuses of the pass
// and observedGeneration and Reconciled as the pass leaves the object. A
// status that would not change is not written, so the write the gateway's
// own watch sees next finds nothing to do: no loop. Its own write does not
// count as a change for sync either.
func (c *Controller) flushStatus(ctx context.Context, p *pass) error {
	current, _, _ := unstructured.NestedMap(p.obj.Object, "status")
	base := current
	if p.status.held {
		base = p.status.base
	}
	desired := current
	if p.obj.GetDeletionTimestamp() == nil {
		desired = withReconciled(current, p.obj.GetGeneration(), inspect.ClassifyState(c.op, p.obj, p.st, p.now), p.now)
	}
	if reflect.DeepEqual(normalize(base), normalize(desired)) {
		return nil
	}
	patch, err := statusPatch(base, desired)
	if err != nil {
		return err
	}
	before := ""
	if c.op.HasEvent(spec.EventSync) {
		before = syncDigest(p.obj, p.children, p.related)
	}
	subresource := c.status == nil || c.status.HasStatusSubresource()
	out, err := c.applier.PatchStatus(ctx, p.obj, patch, subresource)
	c.countApply("status", err)
	if err != nil {
		return err
	}
	c.adopt(p, out)
	if before != "" && p.mem.SyncDigest == before {
		p.mem.SyncDigest = syncDigest(p.obj, p.children, p.related)
	}
	return nil
}

// withReconciled returns status with observedGeneration and the Reconciled
// condition for o; a condition whose status, reason and message stay keeps
// its lastTransitionTime, as do the handlers' own conditions.
func withReconciled(status map[string]any, generation int64, o inspect.Object, now time.Time) map[string]any {
	out := make(map[string]any, len(status)+2)
	for k, v := range status {
		out[k] = v
	}
	out["observedGeneration"] = generation
	cond := reconciledCondition(o)
	cond.ObservedGeneration = generation
	var conds []any
	if list, ok := status["conditions"].([]any); ok {
		conds = slices.Clone(list)
	}
	at := slices.IndexFunc(conds, func(v any) bool { m, _ := v.(map[string]any); return m["type"] == ConditionReconciled })
	cond.LastTransitionTime = metav1.NewTime(now.UTC().Truncate(time.Second))
	if at >= 0 {
		old, _ := conds[at].(map[string]any)
		if old["status"] == string(cond.Status) {
			if t, err := time.Parse(time.RFC3339, fmt.Sprint(old["lastTransitionTime"])); err == nil {
				cond.LastTransitionTime = metav1.NewTime(t)
			}
		}
	}
	m := map[string]any{"type": cond.Type, "status": string(cond.Status), "observedGeneration": cond.ObservedGeneration,
		"lastTransitionTime": cond.LastTransitionTime.UTC().Format(time.RFC3339), "reason": cond.Reason, "message": cond.Message}
	if at >= 0 {
		conds[at] = m
	} else {
		conds = append(conds, m)
	}
	out["conditions"] = conds
	return out
}

// reconciledCondition says whether the object's callbacks are done: True
// once settled, False with the failing callback's reason and message.
func reconciledCondition(o inspect.Object) metav1.Condition {
	switch f := o.Failure; {
	case f != nil:
		reason := f.Reason
		if reason == "" {
			reason = "CallbackFailed"
		}
		msg := fmt.Sprintf("callback %s failed (%s, attempt %d): %s", f.Callback, f.Class, f.Attempts, f.Message)
		if f.NextRetry != nil {
			msg += "; next retry at " + f.NextRetry.UTC().Format(time.RFC3339)
		}
		return metav1.Condition{Type: ConditionReconciled, Status: metav1.ConditionFalse, Reason: reason, Message: truncate(msg, 1024)}
	case o.State == inspect.Pending:
		return metav1.Condition{Type: ConditionReconciled, Status: metav1.ConditionUnknown, Reason: "Progressing", Message: "callbacks are still due"}
	}
	return metav1.Condition{Type: ConditionReconciled, Status: metav1.ConditionTrue, Reason: "Reconciled", Message: "every callback due has succeeded"}
}

// statusPatch is the merge patch that turns base into desired.
func statusPatch(base, desired map[string]any) (map[string]any, error) {
	a, err := json.Marshal(orEmpty(base))
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(orEmpty(desired))
	if err != nil {
		return nil, err
	}
	raw, err := jsonpatch.CreateMergePatch(a, b)
	if err != nil {
		return nil, fmt.Errorf("status patch: %w", err)
	}
	var patch map[string]any
	return patch, utiljson.Unmarshal(raw, &patch)
}

func mergeJSON(doc, patch map[string]any) (map[string]any, error) {
	a, err := json.Marshal(orEmpty(doc))
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	raw, err := jsonpatch.MergePatch(a, b)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, utiljson.Unmarshal(raw, &out)
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
