package spec

import "time"

// Defaults of docs/registration.md, filled in by Default.
const (
	DefaultHandlerTimeout    = 10 * time.Second
	DefaultRetryInitialDelay = time.Second
	DefaultRetryMultiplier   = 2.0
	DefaultRetryMaxDelay     = 5 * time.Minute
	DefaultRetryJitter       = 0.2
	DefaultRetryMaxAttempts  = 0
	DefaultMaxInFlight       = 64
	DefaultResyncPeriod      = 10 * time.Minute
	DefaultServiceScheme     = "http"
)

// Default fills in every optional field that has a default, so that the
// engine reads values and never has to know them. It keeps what is set and
// may be called more than once.
func Default(op *WebhookOperator) {
	s := &op.Spec
	if op.APIVersion == "" && op.Kind == "" {
		op.APIVersion, op.Kind = APIVersion, Kind
	}
	if s.Handler.Timeout == nil {
		s.Handler.Timeout = &Duration{DefaultHandlerTimeout}
	}
	defaultService(s.Handler.Service)
	for i := range s.Callbacks {
		if h := s.Callbacks[i].Handler; h != nil {
			// A callback's timeout stays unset: EffectiveHandler inherits
			// the operator's, which is what an unset override means.
			defaultService(h.Service)
		}
	}
	if s.Retry == nil {
		s.Retry = &RetrySpec{}
	}
	defaultRetry(s.Retry)
	if s.Concurrency == nil {
		s.Concurrency = &Concurrency{}
	}
	if s.Concurrency.MaxInFlight == 0 {
		s.Concurrency.MaxInFlight = DefaultMaxInFlight
	}
	if s.ResyncPeriod == nil {
		s.ResyncPeriod = &Duration{DefaultResyncPeriod}
	}
	for i := range s.Children {
		if s.Children[i].UpdateStrategy == "" {
			s.Children[i].UpdateStrategy = UpdateApply
		}
	}
}

func defaultRetry(r *RetrySpec) {
	if r.InitialDelay == nil {
		r.InitialDelay = &Duration{DefaultRetryInitialDelay}
	}
	if r.Multiplier == nil {
		r.Multiplier = ptr(DefaultRetryMultiplier)
	}
	if r.MaxDelay == nil {
		r.MaxDelay = &Duration{DefaultRetryMaxDelay}
	}
	if r.Jitter == nil {
		r.Jitter = ptr(DefaultRetryJitter)
	}
	if r.MaxAttempts == nil {
		r.MaxAttempts = ptr(DefaultRetryMaxAttempts)
	}
}

// defaultService fills scheme and the scheme's well-known port.
func defaultService(svc *ServiceRef) {
	if svc != nil {
		*svc = svc.withDefaults()
	}
}

func ptr[T any](v T) *T { return &v }
