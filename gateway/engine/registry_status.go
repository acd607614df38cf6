package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/spec"
)

// registration is what the registry knows of one WebhookOperator: the
// latest generation it judged, and what the operator's manager last said
// about the generation that runs. They differ while an invalid edit is
// refused: the last valid generation keeps running (Ready) while
// SpecAccepted=False says what is wrong with the new one.
type registration struct {
	generation int64          // latest generation judged
	specErr    string         // why that generation was refused; "" when accepted
	state      *OperatorState // the running generation's last report; nil before one
	written    string         // the last status body written, to skip no-op writes
	reclaimed  time.Time      // when its Ready was last written back over another writer's name
}

// judge records the verdict on a generation's spec and says whether specErr
// is news, so that each distinct error gets one Warning Event.
func (r *Registry) judge(name string, generation int64, specErr string) (news bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.regs[name]
	if !ok {
		reg = &registration{}
		r.regs[name] = reg
	}
	news = specErr != "" && specErr != reg.specErr
	reg.generation, reg.specErr = generation, specErr
	return news
}

func (r *Registry) forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.regs, name)
}

// syncFailed records why the sync of the WebhookOperator called name
// failed, for Ready; nil when it succeeded.
func (r *Registry) syncFailed(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.failing, name)
		return
	}
	r.failing[name] = err.Error()
}

// reportStatus is the manager's report on a running operator.
func (r *Registry) reportStatus(name string, st OperatorState) {
	r.mu.Lock()
	reg, ok := r.regs[name]
	var news bool
	if ok {
		news = reg.setState(st)
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	if news && namedRefusal(st.Reason) {
		r.warnOperator(name, st.Reason, st.Message)
	}
	r.writeStatus(context.Background(), name)
}

// setState records st and says whether its reason or message is news.
func (g *registration) setState(st OperatorState) (news bool) {
	news = g.state == nil || g.state.Reason != st.Reason || g.state.Message != st.Message
	g.state = &st
	return news
}

// releaseForbidden says on obj, a WebhookOperator being deleted, why it
// keeps its finalizer: Ready=False/ReleaseForbidden, lastError, and a
// Warning Event once per distinct message. Its operator no longer runs,
// so nothing else reports over it.
func (r *Registry) releaseForbidden(ctx context.Context, obj *unstructured.Unstructured, err *ReleaseForbiddenError) {
	name := obj.GetName()
	msg := fmt.Sprintf("being deleted, it keeps its finalizer %s and retries until allowed (grant what `gateway rbac` prints, or remove that finalizer by hand to leave those objects held): %v", RegistryFinalizer, err)
	r.mu.Lock()
	reg, ok := r.regs[name]
	if !ok { // deleted before this gateway judged its spec
		reg = &registration{generation: obj.GetGeneration()}
		r.regs[name] = reg
	}
	news := reg.setState(OperatorState{Generation: obj.GetGeneration(), Reason: ReasonReleaseForbidden, Message: msg})
	r.mu.Unlock()
	if news {
		r.deps.Recorder.Event(obj, "Warning", ReasonReleaseForbidden, truncate(msg, 1024))
	}
	r.writeStatus(ctx, name)
}

// warnOperator records a Warning Event on the WebhookOperator, for a
// refusal its author must act on (reported once per distinct message).
func (r *Registry) warnOperator(name, reason, message string) {
	if r.lister == nil {
		return
	}
	if o, err := r.lister.Get(name); err == nil {
		r.deps.Recorder.Event(o.(*unstructured.Unstructured), "Warning", reason, truncate(message, 1024))
	}
}

// ErrLeadershipLost is the cause of the registry's context when the replica
// lost the leader election Lease: another replica may lead and write the
// status by now, so the stopping one writes nothing more.
var ErrLeadershipLost = errors.New("leader election lost")

// stopStatusTimeout bounds the writes of markStopped, within the shutdown
// grace.
const stopStatusTimeout = 5 * time.Second

// MaxStopTime bounds the waits of the operators stopping once their
// context is done: the record writes of the passes in flight
// (recordTimeout), then, after every operator stopped, the GatewayStopped
// writes (stopStatusTimeout). Calls in flight are cancelled, not waited
// for.
const MaxStopTime = recordTimeout + stopStatusTimeout

// markStopped, once every operator stopped on a shutdown, sets Ready to
// False/GatewayStopped on each WebhookOperator whose Ready this gateway
// wrote: nothing runs it until a gateway starts again. Each write is
// pinned (writeStoppedStatus): a Ready another gateway wrote since is
// left alone.
func (r *Registry) markStopped(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopStatusTimeout)
	defer cancel()
	r.mu.Lock()
	var names []string
	for name, reg := range r.regs {
		if reg.state != nil && reg.written != "" {
			names = append(names, name)
		}
	}
	r.mu.Unlock()
	for _, name := range names {
		if err := r.writeStoppedStatus(ctx, name); err != nil {
			r.deps.Logger.Warn("cannot say on the WebhookOperator that the gateway stopped", "operator", name, "error", err)
		}
	}
}

// writeStoppedStatus writes Ready=False/GatewayStopped over the Ready this
// gateway wrote last, and only over it, and removes status.gateway: the
// patch carries the resourceVersion of the read that found it, so a write
// by another gateway in between is refused (a conflict, left alone).
func (r *Registry) writeStoppedStatus(ctx context.Context, name string) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	snap, ok := r.snapshot(name)
	if !ok {
		return nil
	}
	res := r.deps.Dynamic.Resource(OperatorResource)
	o, err := res.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read WebhookOperator %s: %w", name, err)
	}
	current := conditionsOf(o)
	if !sameReady(current, snap.written) {
		return nil // another gateway wrote Ready since
	}
	st := *snap.state
	st.Ready, st.Reason = false, spec.ReasonGatewayStopped
	st.Message = "the gateway that ran this operator stopped; nothing runs it until a gateway starts"
	snap.state = &st
	status := snap.status(current, r.deps.Gateway)
	// No gateway stands behind this Ready any more: the name goes, so that
	// a gateway that predates status.gateway (a rollback), whose Ready
	// leaves the field alone, is not judged by this one's Lease.
	status["gateway"] = nil
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": o.GetResourceVersion()},
		"status":   status,
	})
	if err != nil {
		return err
	}
	_, err = res.Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: apply.FieldManager}, "status")
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // written or deleted since: not ours to say any more
	}
	if err != nil {
		return fmt.Errorf("write WebhookOperator %s status: %w", name, err)
	}
	return nil
}

// snapshot copies the registration called name, so that a status write
// reads it without holding r.mu.
func (r *Registry) snapshot(name string) (registration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.regs[name]
	if !ok {
		return registration{}, false
	}
	return *reg, true
}

// sameReady reports whether conditions hold the Ready condition of the
// status body written.
func sameReady(conditions []metav1.Condition, written string) bool {
	var w struct {
		Status struct {
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"status"`
	}
	if json.Unmarshal([]byte(written), &w) != nil {
		return false
	}
	have := meta.FindStatusCondition(conditions, spec.ConditionReady)
	want := meta.FindStatusCondition(w.Status.Conditions, spec.ConditionReady)
	return have != nil && want != nil && have.Status == want.Status && have.Reason == want.Reason &&
		have.Message == want.Message && have.ObservedGeneration == want.ObservedGeneration
}

// writeStatus merge-patches the WebhookOperator's status subresource from
// its registration. Writes are serialized so that an older view never
// overwrites a newer one.
func (r *Registry) writeStatus(ctx context.Context, name string) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	snap, ok := r.snapshot(name)
	if !ok {
		return
	}
	body, err := json.Marshal(map[string]any{"status": snap.status(r.currentConditions(name), r.deps.Gateway)})
	if err != nil {
		return
	}
	if string(body) == snap.written {
		if !r.takesBackReady(name, snap) {
			return
		}
	}
	_, err = r.deps.Dynamic.Resource(OperatorResource).Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: apply.FieldManager}, "status")
	if err != nil {
		if !apierrors.IsNotFound(err) {
			r.deps.Logger.Warn("write WebhookOperator status", "operator", name, "error", err)
		}
		return
	}
	r.mu.Lock()
	if reg, ok := r.regs[name]; ok {
		reg.written = string(body)
	}
	r.mu.Unlock()
}

// reclaimInterval spaces an elected gateway's rewrites of a Ready another
// gateway named itself on: should two replicas ever both believe they
// lead (a broken election), they trade the field once a second each, not
// as fast as the API server answers.
const reclaimInterval = time.Second

// takesBackReady says whether the Ready this gateway wrote, unchanged
// since, must be written again because the object names another writer:
// a leader that lost the Lease landed a write after this one's (it had it
// in flight), and status would show this gateway's Ready as stale. Only
// an elected gateway does, and only over a writer of its own Lease: two
// unelected ones, or two installations, running the same operators would
// take the field from each other for ever.
func (r *Registry) takesBackReady(name string, snap registration) bool {
	gw := r.deps.Gateway
	if gw == nil || gw.Lease == "" || (snap.state == nil && snap.specErr == "") || r.lister == nil {
		return false
	}
	o, err := r.lister.Get(name)
	if err != nil {
		return false
	}
	obj := o.(*unstructured.Unstructured).Object
	id, _, _ := unstructured.NestedString(obj, "status", "gateway", "identity")
	lease, _, _ := unstructured.NestedString(obj, "status", "gateway", "lease")
	if id == gw.Identity || lease != gw.Lease {
		return false // ours, or another election's (a second installation): not a late write of this one
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.regs[name]
	if !ok {
		return false
	}
	if wait := reclaimInterval - time.Since(reg.reclaimed); wait > 0 {
		r.queue.AddAfter(name, wait)
		return false
	}
	reg.reclaimed = time.Now()
	return true
}

func (r *Registry) currentConditions(name string) []metav1.Condition {
	var current []metav1.Condition
	if r.lister == nil {
		return nil
	}
	if o, err := r.lister.Get(name); err == nil {
		current = conditionsOf(o.(*unstructured.Unstructured))
	}
	return current
}

// conditionsOf decodes o's status.conditions; nil when it has none.
func conditionsOf(o *unstructured.Unstructured) []metav1.Condition {
	var current []metav1.Condition
	if raw, ok, _ := unstructured.NestedSlice(o.Object, "status", "conditions"); ok {
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &current)
	}
	return current
}

// status is the status to write: Ready about the running generation,
// SpecAccepted and observedGeneration about the latest one. gateway, the
// writer's name, goes with a Ready this gateway writes, and only with one:
// a Ready left by another gateway keeps its writer's name.
func (g *registration) status(conditions []metav1.Condition, gateway *spec.GatewayRef) map[string]any {
	accepted := metav1.Condition{Type: spec.ConditionSpecAccepted, Status: metav1.ConditionTrue, Reason: spec.ReasonAccepted,
		Message: "the spec is valid", ObservedGeneration: g.generation}
	if g.specErr != "" {
		accepted.Status, accepted.Reason, accepted.Message = metav1.ConditionFalse, spec.ReasonInvalidSpec, truncate(g.specErr, 2048)
	}
	meta.SetStatusCondition(&conditions, accepted)
	var stats Stats
	lastError := g.specErr
	writesReady := g.state != nil || g.specErr != ""
	switch {
	case g.state != nil:
		st := g.state
		ready := metav1.Condition{Type: spec.ConditionReady, Status: metav1.ConditionFalse, Reason: st.Reason,
			Message: truncate(st.Message, 2048), ObservedGeneration: st.Generation}
		if st.Ready {
			ready.Status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&conditions, ready)
		stats = st.Stats
		if lastError == "" {
			lastError = st.Stats.LastError
			if !st.Ready {
				lastError = st.Message
			}
		}
	case g.specErr != "":
		// Nothing runs: no valid generation was ever seen.
		meta.SetStatusCondition(&conditions, metav1.Condition{Type: spec.ConditionReady, Status: metav1.ConditionFalse,
			Reason: spec.ReasonInvalidSpec, Message: accepted.Message, ObservedGeneration: g.generation})
	}
	// Explicit keys (not OperatorStatus's omitempty) so that zero counts
	// and a cleared lastError overwrite what the status said before.
	status := map[string]any{
		"observedGeneration": g.generation,
		"conditions":         conditions,
		"watchedObjects":     stats.WatchedObjects,
		"callbacksFailing":   stats.CallbacksFailing,
		"finalizersPending":  stats.FinalizersPending,
		"lastError":          nil,
	}
	if lastError != "" {
		status["lastError"] = truncate(lastError, 2048)
	}
	if writesReady {
		status["gateway"] = writerStatus(gateway)
	}
	return status
}

// writerStatus is status.gateway naming gateway, every key explicit: a
// merge patch keeps the keys it leaves out, and a Lease (or a name) left
// by the gateway before this one is not this Ready's.
func writerStatus(gateway *spec.GatewayRef) any {
	if gateway == nil {
		return nil
	}
	w := map[string]any{"identity": gateway.Identity, "lease": nil}
	if gateway.Lease != "" {
		w["lease"] = gateway.Lease
	}
	return w
}

// Ready reports whether the registry does its work: the WebhookOperator
// CRD is installed and its cache synced, every WebhookOperator it holds
// is taken on (its finalizer added, its spec judged) and its operator has
// reported, and no registered operator is kept from seeing its objects
// (caches not synced, a list or watch failing, discovery or its CRD
// unreadable: often the gateway's RBAC). A registration's own faults
// (InvalidSpec, KindNotFound, a refusal such as SecretNotAllowed or
// NamespacesOnClusterScopedKind, an unreadable secret) are not the
// gateway's: they stay on that WebhookOperator's status. Neither is one
// being deleted: its operator is stopping.
func (r *Registry) Ready() error {
	if _, err, failing := r.health.failing(); failing {
		return registryWatchError(err)
	}
	if !r.synced.Load() {
		return errors.New("waiting for the WebhookOperator cache to sync")
	}
	// Read after synced: Run sets the lister before.
	objs, err := r.lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list WebhookOperators from the cache: %w", err)
	}
	// A WebhookOperator being deleted does not count: its operator is
	// stopped, its last report kept until the release of its objects is
	// done, which may take long or keep failing.
	deleting := map[string]bool{}
	for _, o := range objs {
		if obj, ok := o.(*unstructured.Unstructured); ok && obj.GetDeletionTimestamp() != nil {
			deleting[obj.GetName()] = true
		}
	}
	r.mu.Lock()
	problems := map[string]string{}
	for name, reg := range r.regs {
		if st := reg.state; st != nil && !st.Ready && gatewaySide(st.Reason) && !deleting[name] {
			problems[name] = fmt.Sprintf("operator %s not running (%s: %s)", name, st.Reason, st.Message)
		}
	}
	// A WebhookOperator without a report is not running yet: at a start
	// or a takeover, until the registry took it on and its operator
	// reported, or for ever when taking it on fails (its finalizer cannot
	// be added: the gateway's RBAC).
	for _, o := range objs {
		obj, ok := o.(*unstructured.Unstructured)
		if !ok || deleting[obj.GetName()] {
			continue
		}
		name := obj.GetName()
		if _, ok := problems[name]; ok {
			continue
		}
		reg, registered := r.regs[name]
		switch why, failing := r.failing[name]; {
		case failing:
			problems[name] = fmt.Sprintf("operator %s: cannot take its WebhookOperator on (retrying): %s", name, why)
		case !registered:
			problems[name] = fmt.Sprintf("operator %s not running (waiting for the registry to take it on)", name)
		case reg.state == nil && reg.specErr == "":
			problems[name] = fmt.Sprintf("operator %s not running (starting)", name)
		}
	}
	r.mu.Unlock()
	if len(problems) == 0 {
		return nil
	}
	list := make([]string, 0, len(problems))
	for _, p := range problems {
		list = append(list, p)
	}
	sort.Strings(list)
	return errors.New(strings.Join(list, "; "))
}

// gatewaySide reasons say the gateway cannot see an operator's objects:
// its caches, or, before they start, what it reads from the API server to
// build them (discovery, the watched kind's CRD), are refused or failing.
func gatewaySide(reason string) bool {
	switch reason {
	case spec.ReasonCacheNotSynced, spec.ReasonWatchFailed, spec.ReasonForbidden,
		spec.ReasonAPIServerUnreachable, ReasonCRDUnreadable:
		return true
	}
	return false
}

func registryWatchError(err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("the WebhookOperator CRD %s is not installed: install crds/ first (or run with -f)", OperatorResource.GroupResource())
	}
	return fmt.Errorf("cannot list and watch WebhookOperators (retrying with backoff): %w", err)
}

// logWatchHealth says once, on every change, why the registry cannot
// watch WebhookOperators, and when it can again.
func (r *Registry) logWatchHealth() {
	if _, err, failing := r.health.failing(); failing {
		r.deps.Logger.Error("cannot watch WebhookOperators; retrying", "error", registryWatchError(err))
		return
	}
	r.deps.Logger.Info("watching WebhookOperators")
}
