package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// Results of a call in the report.
const (
	resultSuccess   = "success"
	resultTemporary = "temporary"
	resultPermanent = "permanent"
)

// callReport is what `gateway call` prints; -o json writes it as it is.
type callReport struct {
	URL      string      `json:"url"`
	Operator string      `json:"operator"`
	Callback string      `json:"callback"`
	Event    string      `json:"event"`
	Delivery string      `json:"delivery"`
	Outcome  callOutcome `json:"outcome"`
	// Children would be server-side applied, as listed: defaulted and
	// decorated with the owner reference and the operator label.
	Children []childReport `json:"children,omitempty"`
	// ScopeUnchecked lists the children's kinds ("apiVersion/Kind") of
	// unknown scope, neither built in nor given with --crd: checked and
	// shown as namespaced.
	ScopeUnchecked []string `json:"scopeUnchecked,omitempty"`
	// Prune is set when the answer prunes: a sync answer with children.
	Prune  *pruneReport  `json:"prune,omitempty"`
	Status *statusReport `json:"status,omitempty"`
	// StatusRefused says why the status of an answer with an error, which
	// is applied otherwise, would not be.
	StatusRefused string `json:"statusRefused,omitempty"`
	// Events are recorded even when the answer is refused.
	Events []callbacks.KubeEvent `json:"events,omitempty"`
	// RequeueAfter is when the gateway would call again, capped by the
	// callback's retry.maxDelay; RequeueAfterAsked is the answer's when
	// the cap changed it.
	RequeueAfter      string `json:"requeueAfter,omitempty"`
	RequeueAfterAsked string `json:"requeueAfterAsked,omitempty"`
	// Finalized is set for delete: whether the finalizer would be released.
	Finalized *bool `json:"finalized,omitempty"`
}

type callOutcome struct {
	Result     string `json:"result"` // success, temporary or permanent
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	RetryAfter string `json:"retryAfter,omitempty"` // capped by retry.maxDelay
	// RetryAfterAsked is the handler's retryAfter when the cap changed it.
	RetryAfterAsked string `json:"retryAfterAsked,omitempty"`
}

type childReport struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Namespace  string         `json:"namespace,omitempty"`
	Name       string         `json:"name"`
	Object     map[string]any `json:"object,omitempty"` // with --show-children
}

type pruneReport struct {
	// Delete lists the --children that would be deleted ("apiVersion/Kind name").
	Delete []string `json:"delete"`
}

type statusReport struct {
	Patch map[string]any `json:"patch"`
	// Merged is the status after the merge patch (and, with --crd, after
	// pruning, as the API server would store it).
	Merged map[string]any `json:"merged"`
	// Pruned are the fields the CRD's schema has no place for.
	Pruned []string `json:"pruned,omitempty"`
	// Checked says whether a CRD schema checked the status.
	Checked bool `json:"checked"`
	// Unchanged says the merged status equals the current one.
	Unchanged bool `json:"unchanged,omitempty"`
}

// evaluate checks the answer as the gateway's engine does before applying
// it, in the same order; the first refusal ends it.
func evaluate(t *callTarget, delivery string, resp *callbacks.Response, callErr error) *callReport {
	rep := &callReport{
		URL: displayEndpoint(t.endpoint.URL), Operator: t.operator, Callback: t.callback,
		Event: string(t.event), Delivery: delivery,
	}
	if resp != nil {
		rep.Events = resp.Events
	}
	if callErr != nil {
		rep.Outcome = outcomeOf(callErr, t.retry)
		if resp != nil && resp.Status != nil {
			// An answer with an error still has its status applied, never
			// its children (docs/contract.md).
			if err := rep.checkStatus(t, resp.Status); err != nil {
				rep.Status, rep.StatusRefused = nil, err.Error()
			}
		}
		return rep
	}
	if err := rep.checkChildren(t, resp.Children); err != nil {
		rep.Outcome = outcomeOf(err, t.retry)
		return rep
	}
	if err := rep.checkStatus(t, resp.Status); err != nil {
		rep.Outcome = outcomeOf(err, t.retry)
		return rep
	}
	d, _ := resp.RequeueAfterDuration() // DecodeResponse has checked it
	if t.event == spec.EventDelete {
		released := resp.Finalized == nil || *resp.Finalized
		rep.Finalized = &released
		if !released && d <= 0 {
			d = engine.DefaultFinalizeRequeue
		}
	}
	if d > 0 {
		rep.RequeueAfter, rep.RequeueAfterAsked = capped(t.retry, d)
	}
	rep.Outcome = callOutcome{Result: resultSuccess}
	return rep
}

// capped is the delay the gateway would wait for d, and d when the cap
// changed it.
func capped(retry spec.RetrySpec, d time.Duration) (wait, asked string) {
	c := decide.CapDelay(retry, d)
	if c != d {
		asked = d.String()
	}
	return c.String(), asked
}

func outcomeOf(err error, retry spec.RetrySpec) callOutcome {
	f := failure.As(err)
	out := callOutcome{Result: resultTemporary, Reason: f.Reason, Message: err.Error()}
	if f.Class == failure.Permanent {
		out.Result = resultPermanent
	}
	if f.RetryAfter > 0 {
		out.RetryAfter, out.RetryAfterAsked = capped(retry, f.RetryAfter)
	}
	return out
}

// checkChildren refuses children as the gateway would, then lists them as
// they would be applied and, for sync, which observed children would go.
func (rep *callReport) checkChildren(t *callTarget, children *[]*unstructured.Unstructured) error {
	if children == nil {
		return nil
	}
	declared := t.declared
	if !t.kindsKnown { // accept every kind, check the rest
		for _, c := range *children {
			if c != nil {
				declared = append(declared, spec.ChildSpec{APIVersion: c.GetAPIVersion(), Kind: c.GetKind()})
			}
		}
	}
	scopes, unknown := childScopes(t.kinds, *children)
	rep.ScopeUnchecked = unknown
	desired, err := check.CheckChildren(t.parent, *children, declared, scopes, t.operator)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	rep.Children = make([]childReport, 0, len(desired)) // not nil: the answer has the key
	for _, child := range desired {
		check.Decorate(child, t.parent, t.operator)
		keep[childKey(child, t.parent)] = true
		rep.Children = append(rep.Children, childReport{
			APIVersion: child.GetAPIVersion(), Kind: child.GetKind(),
			Namespace: child.GetNamespace(), Name: child.GetName(), Object: child.Object,
		})
	}
	if t.event != spec.EventSync {
		return nil
	}
	rep.Prune = &pruneReport{Delete: []string{}}
	for _, o := range t.children {
		isDeclared := slices.ContainsFunc(declared, func(d spec.ChildSpec) bool {
			return d.APIVersion == o.GetAPIVersion() && d.Kind == o.GetKind()
		})
		if key := childKey(o, t.parent); isDeclared && !keep[key] && o.GetDeletionTimestamp() == nil {
			rep.Prune.Delete = append(rep.Prune.Delete, key)
		}
	}
	slices.Sort(rep.Prune.Delete)
	return nil
}

func childKey(o, parent *unstructured.Unstructured) string {
	return o.GetAPIVersion() + "/" + o.GetKind() + " " + nameIn(o, parent)
}

// checkStatus merges the patch over the object's status and, with a CRD,
// checks the result against its schema.
func (rep *callReport) checkStatus(t *callTarget, patch map[string]any) error {
	if patch == nil {
		return nil
	}
	if t.statusChecker == nil && len(patch) > 0 {
		if err := noStatusError(t.parent); err != nil {
			return err
		}
	}
	current, _, _ := unstructured.NestedMap(t.parent.Object, "status")
	st := &statusReport{Patch: patch, Checked: t.statusChecker != nil}
	rep.Status = st
	if t.statusChecker == nil {
		st.Merged = mergeStatus(current, patch)
	} else {
		merged, pruned, err := t.statusChecker.Check(current, patch)
		st.Merged, st.Pruned = merged, pruned
		if err != nil {
			return err
		}
	}
	st.Unchanged = reflect.DeepEqual(normalizeJSON(current), normalizeJSON(st.Merged))
	return nil
}

// mergeStatus applies a JSON merge patch (RFC 7386): null deletes, objects
// merge, anything else replaces.
func mergeStatus(target, patch map[string]any) map[string]any {
	out := make(map[string]any, len(target)+len(patch))
	for k, v := range target {
		out[k] = v
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			tv, _ := out[k].(map[string]any)
			out[k] = mergeStatus(tv, pv)
		default:
			out[k] = v
		}
	}
	return out
}

// normalizeJSON round-trips a map through JSON so that int64 and float64
// forms of a number compare equal; nil and empty are the same.
func normalizeJSON(m map[string]any) any {
	if len(m) == 0 {
		return map[string]any{}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return m
	}
	return out
}

// displayEndpoint shows a URL without user info, query or fragment.
func displayEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// print writes the report as text or JSON.
func (rep *callReport) print(w io.Writer, format string, showChildren bool) error {
	if !showChildren {
		for i := range rep.Children {
			rep.Children[i].Object = nil
		}
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	p := &printer{w: w}
	p.line("POST %s", rep.URL)
	p.line("  operator %s, callback %s, event %s, delivery %s", rep.Operator, rep.Callback, rep.Event, rep.Delivery)
	if o := rep.Outcome; o.Result == resultSuccess {
		p.line("outcome: success")
	} else {
		retry := ""
		if o.RetryAfter != "" {
			retry = ", retry after " + o.RetryAfter + askedNote(o.RetryAfterAsked)
		}
		p.line("outcome: %s failure %s%s: %s", o.Result, o.Reason, retry, o.Message)
		if rep.Status == nil {
			p.line("nothing of this answer would be applied")
		} else {
			p.line("of this answer only its status would be applied (and its events recorded)")
		}
	}
	rep.printChildren(p)
	if len(rep.ScopeUnchecked) > 0 {
		p.line("scope not checked (taken as namespaced; give the CRD with --crd): %s", strings.Join(rep.ScopeUnchecked, ", "))
	}
	rep.printStatus(p)
	if len(rep.Events) > 0 {
		p.line("events:")
		for _, e := range rep.Events {
			p.line("  %s %s: %s", cmp.Or(e.Type, callbacks.EventTypeNormal), e.Reason, e.Message)
		}
	}
	if rep.Outcome.Result == resultSuccess {
		p.line("requeueAfter: %s%s", cmp.Or(rep.RequeueAfter, "none"), askedNote(rep.RequeueAfterAsked))
	}
	switch {
	case rep.Finalized == nil:
	case *rep.Finalized:
		p.line("finalizer: released")
	default:
		p.line("finalizer: kept; called again after %s", rep.RequeueAfter)
	}
	return p.err
}

// askedNote shows the delay a handler asked for beside the capped one.
func askedNote(asked string) string {
	if asked == "" {
		return ""
	}
	return " (asked " + asked + ", capped by retry.maxDelay)"
}

func (rep *callReport) printChildren(p *printer) {
	if rep.Outcome.Result != resultSuccess {
		return
	}
	if rep.Children == nil {
		p.line("children: none in the answer")
	} else {
		p.line("children to apply: %d", len(rep.Children))
	}
	for _, c := range rep.Children {
		name := c.Name
		if c.Namespace != "" {
			name = c.Namespace + "/" + name
		}
		p.line("  %s %s %s", c.APIVersion, c.Kind, name)
		if c.Object != nil {
			b, err := yaml.Marshal(c.Object)
			if err != nil {
				p.line("    (cannot show: %v)", err)
				continue
			}
			p.line("    %s", strings.ReplaceAll(strings.TrimSuffix(string(b), "\n"), "\n", "\n    "))
		}
	}
	switch {
	case rep.Prune == nil && rep.Event != string(spec.EventSync) && len(rep.Children) == 0:
	case rep.Prune == nil:
		p.line("pruning: no (only a sync answer with a children key prunes)")
	case len(rep.Prune.Delete) == 0:
		p.line("pruning: yes, the answer is the full set; none of the given --children would be deleted")
	default:
		p.line("pruning: yes, the answer is the full set; would delete %d:", len(rep.Prune.Delete))
		for _, d := range rep.Prune.Delete {
			p.line("  %s", d)
		}
	}
}

func (rep *callReport) printStatus(p *printer) {
	st := rep.Status
	if rep.StatusRefused != "" {
		p.line("status: would not be applied: %s", rep.StatusRefused)
	}
	if st == nil {
		if rep.Outcome.Result == resultSuccess {
			p.line("status: no patch")
		}
		return
	}
	p.line("status patch: %s", compactJSON(st.Patch))
	unchanged := ""
	if st.Unchanged {
		unchanged = " (unchanged)"
	}
	p.line("status after merge: %s%s", compactJSON(st.Merged), unchanged)
	if len(st.Pruned) > 0 {
		p.line("warning: the CRD's schema has no place for %s: the API server would drop them", strings.Join(st.Pruned, ", "))
	}
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// printer writes lines and keeps the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}
