package spec

import (
	"fmt"
	"net/url"
	"strings"
)

// IsValid reports whether e is one of the events of docs/contract.md ("Events and when they fire").
func (e Event) IsValid() bool {
	switch e {
	case EventCreate, EventUpdate, EventDelete, EventResume, EventTimer, EventSync:
		return true
	}
	return false
}

// Finalizer is the finalizer the gateway holds on watched objects for this
// operator while it has a delete callback: "opgate.dev/<name>".
func (op *WebhookOperator) Finalizer() string { return Group + "/" + op.Name }

// StateAnnotation is the annotation holding this operator's state on each
// watched object: "opgate.dev/state.<name>".
func (op *WebhookOperator) StateAnnotation() string { return Group + "/state." + op.Name }

// HasEvent reports whether any callback subscribes to e; for example only an
// operator with a delete callback holds a finalizer.
func (op *WebhookOperator) HasEvent(e Event) bool {
	for _, c := range op.Spec.Callbacks {
		if c.Handles(e) {
			return true
		}
	}
	return false
}

// CallbacksFor returns the callbacks subscribed to e, in declaration order.
func (op *WebhookOperator) CallbacksFor(e Event) []Callback {
	var out []Callback
	for _, c := range op.Spec.Callbacks {
		if c.Handles(e) {
			out = append(out, c)
		}
	}
	return out
}

// Handles reports whether the callback subscribes to e.
func (c Callback) Handles(e Event) bool {
	for _, on := range c.Events {
		if on == e {
			return true
		}
	}
	return false
}

// EffectiveRetry is the callback's retry override merged field by field over
// the operator's settings (pass the defaulted spec.retry): a field the
// callback sets wins, the others come from opDefault.
func (c Callback) EffectiveRetry(opDefault RetrySpec) RetrySpec {
	r := opDefault
	if o := c.Retry; o != nil {
		if o.InitialDelay != nil {
			r.InitialDelay = o.InitialDelay
		}
		if o.Multiplier != nil {
			r.Multiplier = o.Multiplier
		}
		if o.MaxDelay != nil {
			r.MaxDelay = o.MaxDelay
		}
		if o.Jitter != nil {
			r.Jitter = o.Jitter
		}
		if o.MaxAttempts != nil {
			r.MaxAttempts = o.MaxAttempts
		}
	}
	return r
}

// EffectiveHandler is the endpoint this callback calls, with the callback's
// path already joined to the URL or to the service's path.
//
// A handler override that sets url or service is a different endpoint: it
// brings its own auth (none if it sets none), so that the operator's bearer
// token or CA bundle is never sent to, or used for, an endpoint it was not
// meant for. An override without url and service only replaces timeout
// and/or auth of the operator's endpoint. An unset timeout is inherited.
// The result shares the Auth and Timeout pointers of its inputs.
func (c Callback) EffectiveHandler(op HandlerSpec) HandlerSpec {
	h := op
	if o := c.Handler; o != nil {
		if o.hasEndpoint() {
			h.URL, h.Service, h.Auth = o.URL, o.Service, o.Auth
		}
		if o.Auth != nil {
			h.Auth = o.Auth
		}
		if o.Timeout != nil {
			h.Timeout = o.Timeout
		}
	}
	if h.Service != nil {
		svc := *h.Service // a copy: the operator's ServiceRef is shared
		svc.Path = joinURLPath(svc.Path, c.Path)
		h.Service = &svc
	}
	if h.URL != "" && c.Path != "" {
		if u, err := url.Parse(h.URL); err == nil {
			u.Path = joinURLPath(u.Path, c.Path)
			u.RawPath = ""
			h.URL = u.String()
		}
	}
	return h
}

// joinURLPath appends a callback path ("/create") to a base path, with
// exactly one slash between them.
func joinURLPath(base, p string) string {
	if p == "" {
		return base
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(p, "/")
}

// Endpoint returns the URL to POST to: URL, or the service's in-cluster
// address; empty when neither is set.
func (h HandlerSpec) Endpoint() string {
	if h.Service != nil {
		return h.Service.URL()
	}
	return h.URL
}

func (h HandlerSpec) hasEndpoint() bool { return h.URL != "" || h.Service != nil }

// URL is the service's in-cluster address,
// scheme://name.namespace.svc:port/path, with the defaults of an unset
// scheme (http) and port (the scheme's).
func (s ServiceRef) URL() string {
	s = s.withDefaults()
	return fmt.Sprintf("%s://%s.%s.svc:%d%s", s.Scheme, s.Name, s.Namespace, s.Port, s.Path)
}

func (s ServiceRef) withDefaults() ServiceRef {
	if s.Scheme == "" {
		s.Scheme = DefaultServiceScheme
	}
	if s.Port == 0 {
		s.Port = 80
		if s.Scheme == "https" {
			s.Port = 443
		}
	}
	return s
}
