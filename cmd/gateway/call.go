package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/check"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/rbac"
	"github.com/opgate/opgate/gateway/spec"
)

// Exit statuses of `gateway call`, carried by exitError.
const (
	exitRefused = 1 // the handler failed, or the gateway would refuse its answer
	exitUsage   = 2 // bad flags or input files: nothing was sent
)

// exitError is an error with the process exit status it stands for.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the process exit status for the error.
func (e *exitError) ExitCode() int { return e.code }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// callOptions are the flags of `gateway call`.
type callOptions struct {
	url, file, operator, callbackID, event string
	objectFile, oldFile, relatedFile       string
	childrenFile, hmacSecretFile           string
	childrenKinds, crdFiles                []string
	timeout                                time.Duration
	timeoutSet, showChildren               bool
	output                                 string
}

// callTarget is where and what `gateway call` sends, resolved from the
// flags and, with -f, from the registration.
type callTarget struct {
	endpoint          call.Endpoint
	operator          string
	callback          string
	event             spec.Event
	declared          []spec.ChildSpec // nil with kindsKnown false: children kinds are not checked
	kindsKnown        bool
	relatedKinds      []string        // kind keys the gateway sends even when empty
	watch             *spec.WatchSpec // the operator's, with -f: the object must be of its kind
	retry             spec.RetrySpec  // the callback's, with -f: maxDelay caps the delays asked for
	cb                *spec.Callback  // with -f: its when filters apply
	notes             []string
	statusChecker     *check.StatusChecker
	kinds             rbac.Resolver // scopes of built-in kinds and the --crd files
	parent, old       *unstructured.Unstructured
	children, related []*unstructured.Unstructured
}

func newCallCommand() *cobra.Command {
	o := &callOptions{}
	cmd := &cobra.Command{
		Use:   "call (--url URL | -f FILE --callback ID) --event EVENT --object FILE",
		Short: "Send one synthetic event to a handler and print what the gateway would apply",
		Long: `Send one event to a handler exactly as the gateway would (same request, headers,
signature, timeout, size limit and error classes) and print what the gateway would
do with the answer: children to apply, pruning, status patch and merged status,
Events, requeue, finalizer. Nothing is applied and no cluster is needed.

The exit status is 0 when the gateway would apply the answer, 1 when the handler
failed or the answer would be refused, 2 for usage errors (nothing was sent).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unexpected arguments %q", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.timeoutSet = cmd.Flags().Changed("timeout")
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: exitUsage, err: err} })
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "handler URL, path included (with -f: replaces the registration's)")
	f.StringVarP(&o.file, "file", "f", "", "WebhookOperator file to take URL, path, timeout and children kinds from")
	f.StringVar(&o.operator, "operator", "", "operator name (with -f: which operator of the file; default \"dev\" with --url)")
	f.StringVar(&o.callbackID, "callback", "", "callback id (required with -f; default: the event's name)")
	f.StringVar(&o.event, "event", "", "create, update, delete, resume, timer or sync (with -f: default the callback's only event)")
	f.StringVar(&o.objectFile, "object", "", "the watched object, YAML or JSON (required)")
	f.StringVar(&o.oldFile, "old", "", "update only: the last handled object; the request gets old and diff from it")
	f.StringVar(&o.relatedFile, "related", "", "sync/delete only: related objects, multi-document YAML or a List")
	f.StringVar(&o.childrenFile, "children", "", "sync/delete only: observed children, multi-document YAML or a List")
	f.StringArrayVar(&o.crdFiles, "crd", nil, "CRD file (repeatable): the watched kind's checks the status patch against its schema, a child kind's gives its scope")
	f.StringSliceVar(&o.childrenKinds, "children-kinds", nil, "kinds children may have, e.g. apps/v1/Deployment,v1/ConfigMap (default with -f: spec.children)")
	f.StringVar(&o.hmacSecretFile, "hmac-secret-file", "", "sign with the secret in this file (raw or whsec_+base64; surrounding whitespace is ignored)")
	f.DurationVar(&o.timeout, "timeout", call.DefaultTimeout, "how long to wait for the answer (default with -f: the registration's)")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	f.BoolVar(&o.showChildren, "show-children", false, "print every child in full, as it would be applied")
	return cmd
}

func (o *callOptions) run(ctx context.Context, stdout, stderr io.Writer) error {
	if o.output != "text" && o.output != "json" {
		return usageErrorf("--output %q: want text or json", o.output)
	}
	t, err := o.resolve()
	if err != nil {
		return err
	}
	if err := o.loadObjects(t); err != nil {
		return err
	}
	if err := t.checkWhen(); err != nil {
		return err
	}
	for _, n := range t.notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	client, err := call.New(call.Config{})
	if err != nil {
		return fmt.Errorf("call client: %w", err)
	}
	defer client.CloseIdleConnections()
	req := buildRequest(t, time.Now())
	resp, callErr := client.Call(ctx, t.endpoint, req)
	if f := failure.As(callErr); callErr != nil && f.Reason == call.ReasonInvalidEndpoint {
		return &exitError{code: exitUsage, err: callErr}
	}
	rep := evaluate(t, req.UID, resp, callErr)
	if err := rep.print(stdout, o.output, o.showChildren); err != nil {
		return fmt.Errorf("print report: %w", err)
	}
	if len(rep.Children) > 0 && !t.kindsKnown {
		fmt.Fprintln(stderr, "note: the children's kinds were not checked: give -f or --children-kinds")
	}
	if rep.Status != nil && !rep.Status.Checked {
		fmt.Fprintln(stderr, "note: the status was not checked against a schema: give the CRD with --crd")
	}
	if rep.Outcome.Result != resultSuccess {
		what := "nothing"
		if rep.Status != nil {
			what = "only the status"
		}
		return &exitError{code: exitRefused, err: fmt.Errorf("%s failure %s: the gateway would apply %s", rep.Outcome.Result, rep.Outcome.Reason, what)}
	}
	return nil
}

// checkWhen refuses, as a usage error, an event the callback's when
// filters keep the gateway from sending (the engine's decide.FilteredOut).
func (t *callTarget) checkWhen() error {
	if t.cb == nil {
		return nil
	}
	var old map[string]any
	current := essence.Of(t.parent)
	if t.old != nil {
		old = essence.Of(t.old)
		if t.event == spec.EventUpdate && essence.Digest(old) == essence.Digest(current) {
			return usageErrorf("callback %s is not called for this update: --old and --object have the same essence (spec, labels, annotations); the gateway would send nothing", t.callback)
		}
	}
	if rule := decide.FilteredOut(*t.cb, t.parent, t.event, old, current); rule != "" {
		return usageErrorf("callback %s is not called for this %s: %s; the gateway would send nothing", t.callback, t.event, rule)
	}
	return nil
}

// resolve works out the endpoint, names and event from the flags and the
// registration, and reads the secret and the CRD.
func (o *callOptions) resolve() (*callTarget, error) {
	if o.event != "" && !spec.Event(o.event).IsValid() {
		return nil, usageErrorf("--event %q: want create, update, delete, resume, timer or sync", o.event)
	}
	t := &callTarget{event: spec.Event(o.event), endpoint: call.Endpoint{Timeout: o.timeout}}
	switch {
	case o.file != "":
		if err := o.fromRegistration(t); err != nil {
			return nil, err
		}
	case o.url == "":
		return nil, usageErrorf("give the handler's --url, or -f FILE with --callback ID")
	case o.event == "":
		return nil, usageErrorf("--event is required with --url")
	default:
		t.operator = cmp.Or(o.operator, "dev")
		t.callback = cmp.Or(o.callbackID, o.event)
	}
	if o.url != "" {
		t.endpoint.URL = o.url
	}
	if o.timeoutSet {
		t.endpoint.Timeout = o.timeout
	}
	if len(o.childrenKinds) > 0 {
		t.declared, t.kindsKnown = nil, true
		for _, k := range o.childrenKinds {
			i := strings.LastIndex(k, "/")
			if i <= 0 || i == len(k)-1 {
				return nil, usageErrorf("--children-kinds %q: want apiVersion/Kind, e.g. apps/v1/Deployment", k)
			}
			t.declared = append(t.declared, spec.ChildSpec{APIVersion: k[:i], Kind: k[i+1:]})
		}
	}
	if o.hmacSecretFile != "" {
		secret, err := os.ReadFile(o.hmacSecretFile)
		if err != nil {
			return nil, usageErrorf("--hmac-secret-file: %w", err)
		}
		// The file's bytes are used as the gateway uses a Secret's: the
		// key is what SigningKey makes of them (a final newline dropped),
		// the one rule the gateway and the handlers share.
		if _, err := callbacks.SigningKey(secret); err != nil {
			return nil, usageErrorf("--hmac-secret-file %s: %w", o.hmacSecretFile, err)
		}
		t.endpoint.HMACSecret = secret
	}
	return t, nil
}

// fromRegistration takes the callback's endpoint, event and the operator's
// children and related kinds from a WebhookOperator file.
func (o *callOptions) fromRegistration(t *callTarget) error {
	ops, err := spec.LoadFiles(o.file)
	if err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("-f %s: %w", o.file, err)}
	}
	var op *spec.WebhookOperator
	var names []string
	for _, candidate := range ops {
		names = append(names, candidate.Name)
		if candidate.Name == o.operator || (o.operator == "" && len(ops) == 1) {
			op = candidate
		}
	}
	switch {
	case op == nil && o.operator != "":
		return usageErrorf("-f %s has no operator %q; it defines %s", o.file, o.operator, strings.Join(names, ", "))
	case op == nil:
		return usageErrorf("-f %s defines operators %s: choose one with --operator", o.file, strings.Join(names, ", "))
	}
	i := slices.IndexFunc(op.Spec.Callbacks, func(c spec.Callback) bool { return c.ID == o.callbackID })
	if i < 0 {
		ids := make([]string, len(op.Spec.Callbacks))
		for j, c := range op.Spec.Callbacks {
			ids[j] = c.ID
		}
		if o.callbackID == "" {
			return usageErrorf("operator %s: choose one with --callback: %s", op.Name, strings.Join(ids, ", "))
		}
		return usageErrorf("callback %q does not exist in operator %s, which has %s", o.callbackID, op.Name, strings.Join(ids, ", "))
	}
	cb := op.Spec.Callbacks[i]
	events := make([]string, len(cb.Events))
	for j, e := range cb.Events {
		events[j] = string(e)
	}
	switch {
	case t.event == "" && len(cb.Events) == 1:
		t.event = cb.Events[0]
	case t.event == "":
		return usageErrorf("callback %s handles %s: choose one with --event", cb.ID, strings.Join(events, ", "))
	case !cb.Handles(t.event):
		return usageErrorf("callback %s does not handle %s, only %s", cb.ID, t.event, strings.Join(events, ", "))
	}
	t.operator, t.callback, t.cb = op.Name, cb.ID, &cb
	t.watch = &op.Spec.Watch
	var opRetry spec.RetrySpec
	if op.Spec.Retry != nil {
		opRetry = *op.Spec.Retry
	}
	t.retry = cb.EffectiveRetry(opRetry)
	t.declared, t.kindsKnown = op.Spec.Children, true
	for _, r := range op.Spec.Related {
		t.relatedKinds = append(t.relatedKinds, r.APIVersion+"/"+r.Kind)
	}
	h := cb.EffectiveHandler(op.Spec.Handler)
	t.endpoint.URL, t.endpoint.Timeout = h.Endpoint(), h.Timeout.Or(call.DefaultTimeout)
	if h.Service != nil && o.url == "" {
		t.notes = append(t.notes, fmt.Sprintf("%s is an in-cluster address; give --url to reach a port-forward", t.endpoint.URL))
	}
	if a := h.Auth; a != nil {
		if a.HMACSecretRef != nil && o.hmacSecretFile == "" {
			t.notes = append(t.notes, fmt.Sprintf("the gateway signs with Secret %s/%s; give its key with --hmac-secret-file", a.HMACSecretRef.Namespace, a.HMACSecretRef.Name))
		}
		if a.BearerTokenSecretRef != nil || a.ClientCertSecretRef != nil {
			t.notes = append(t.notes, "bearer tokens and client certificates are not sent by gateway call")
		}
		if a.CABundle != "" {
			ca, err := base64.StdEncoding.DecodeString(a.CABundle)
			if err != nil {
				return usageErrorf("caBundle of callback %s: %w", cb.ID, err)
			}
			if t.endpoint.TLS, err = call.TLSConfig(ca, nil, nil); err != nil {
				return usageErrorf("caBundle of callback %s: %w", cb.ID, err)
			}
		}
	}
	return nil
}
