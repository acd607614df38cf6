package spec

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestFinalizerAndStateAnnotationCarryTheOperatorName(t *testing.T) {
	op := validOperator()
	if got, want := op.Finalizer(), "opgate.dev/memcached"; got != want {
		t.Errorf("Finalizer() = %q, want %q", got, want)
	}
	if got, want := op.StateAnnotation(), "opgate.dev/state.memcached"; got != want {
		t.Errorf("StateAnnotation() = %q, want %q", got, want)
	}
}

func TestCallbacksForAndHasEvent(t *testing.T) {
	op := validOperator()
	op.Spec.Callbacks = append(op.Spec.Callbacks, Callback{ID: "both", Events: []Event{EventCreate, EventResume}})
	tests := []struct {
		event   Event
		wantIDs []string
	}{
		{EventCreate, []string{"create", "both"}},
		{EventResume, []string{"both"}},
		{EventTimer, []string{"backup"}},
		{EventDelete, nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.event), func(t *testing.T) {
			var ids []string
			for _, c := range op.CallbacksFor(tt.event) {
				ids = append(ids, c.ID)
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Errorf("CallbacksFor(%s) = %v, want %v", tt.event, ids, tt.wantIDs)
			}
			if got, want := op.HasEvent(tt.event), tt.wantIDs != nil; got != want {
				t.Errorf("HasEvent(%s) = %v, want %v", tt.event, got, want)
			}
		})
	}
}

func TestEffectiveRetryOverridesFieldByField(t *testing.T) {
	op := validOperator()
	Default(op)
	c := Callback{Retry: &RetrySpec{MaxDelay: dur(time.Minute), MaxAttempts: ptr(3)}}
	got := c.EffectiveRetry(*op.Spec.Retry)
	if got.MaxDelay.Duration != time.Minute || *got.MaxAttempts != 3 {
		t.Errorf("overridden fields: maxDelay %v, maxAttempts %d; want 1m, 3", got.MaxDelay, *got.MaxAttempts)
	}
	if got.InitialDelay.Duration != DefaultRetryInitialDelay || *got.Multiplier != DefaultRetryMultiplier || *got.Jitter != DefaultRetryJitter {
		t.Errorf("inherited fields: %+v; want the operator's", got)
	}
	if none := (Callback{}).EffectiveRetry(*op.Spec.Retry); !reflect.DeepEqual(none, *op.Spec.Retry) {
		t.Errorf("without override = %+v, want the operator's %+v", none, *op.Spec.Retry)
	}
}

func TestEffectiveHandler(t *testing.T) {
	opAuth := &AuthSpec{BearerTokenSecretRef: &SecretKeyRef{Namespace: "demo", Name: "s", Key: "token"}}
	cbAuth := &AuthSpec{HMACSecretRef: &SecretKeyRef{Namespace: "demo", Name: "s", Key: "hmac"}}
	tests := []struct {
		name         string
		op           HandlerSpec
		callback     Callback
		wantEndpoint string
		wantAuth     *AuthSpec
		wantTimeout  time.Duration
	}{
		{"path is appended to the operator's URL",
			HandlerSpec{URL: "http://127.0.0.1:8081", Timeout: dur(time.Second), Auth: opAuth},
			Callback{Path: "/create"},
			"http://127.0.0.1:8081/create", opAuth, time.Second},
		{"one slash between a base path and the callback path, query kept",
			HandlerSpec{URL: "https://h.example/hooks/?v=1"},
			Callback{Path: "/create"},
			"https://h.example/hooks/create?v=1", nil, 0},
		{"no path leaves the URL as it is",
			HandlerSpec{URL: "http://h/x/"},
			Callback{},
			"http://h/x/", nil, 0},
		{"path is appended to the service's path",
			HandlerSpec{Service: &ServiceRef{Namespace: "demo", Name: "hook", Port: 8080, Path: "/v1"}},
			Callback{Path: "/sync"},
			"http://hook.demo.svc:8080/v1/sync", nil, 0},
		{"an override endpoint brings its own auth, never the operator's",
			HandlerSpec{URL: "http://a", Timeout: dur(time.Second), Auth: opAuth},
			Callback{Path: "/d", Handler: &HandlerSpec{Service: &ServiceRef{Namespace: "demo", Name: "other", Scheme: "https"}}},
			"https://other.demo.svc:443/d", nil, time.Second},
		{"an override with endpoint and auth uses both",
			HandlerSpec{URL: "http://a", Auth: opAuth},
			Callback{Handler: &HandlerSpec{URL: "http://b", Auth: cbAuth}},
			"http://b", cbAuth, 0},
		{"an override without endpoint changes only timeout and auth",
			HandlerSpec{URL: "http://a", Timeout: dur(time.Second), Auth: opAuth},
			Callback{Path: "/p", Handler: &HandlerSpec{Timeout: dur(time.Minute), Auth: cbAuth}},
			"http://a/p", cbAuth, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before ServiceRef
			if tt.op.Service != nil {
				before = *tt.op.Service
			}
			got := tt.callback.EffectiveHandler(tt.op)
			if ep := got.Endpoint(); ep != tt.wantEndpoint {
				t.Errorf("endpoint = %q, want %q", ep, tt.wantEndpoint)
			}
			if got.Auth != tt.wantAuth {
				t.Errorf("auth = %+v, want %+v", got.Auth, tt.wantAuth)
			}
			if d := got.Timeout.Or(0); d != tt.wantTimeout {
				t.Errorf("timeout = %v, want %v", d, tt.wantTimeout)
			}
			if tt.op.Service != nil && *tt.op.Service != before {
				t.Errorf("the operator's service was modified: %+v", *tt.op.Service)
			}
		})
	}
}

func TestServiceURLUsesTheSchemesPort(t *testing.T) {
	tests := []struct {
		svc  ServiceRef
		want string
	}{
		{ServiceRef{Namespace: "n", Name: "s"}, "http://s.n.svc:80"},
		{ServiceRef{Namespace: "n", Name: "s", Scheme: "https"}, "https://s.n.svc:443"},
		{ServiceRef{Namespace: "n", Name: "s", Port: 8443, Scheme: "https", Path: "/h"}, "https://s.n.svc:8443/h"},
	}
	for _, tt := range tests {
		if got := tt.svc.URL(); got != tt.want {
			t.Errorf("%+v.URL() = %q, want %q", tt.svc, got, tt.want)
		}
	}
}

func TestDefault(t *testing.T) {
	op := validOperator()
	op.Spec.Handler = HandlerSpec{Service: &ServiceRef{Namespace: "n", Name: "s", Scheme: "https"}}
	op.Spec.Children = append(op.Spec.Children, ChildSpec{APIVersion: "v1", Kind: "Service", UpdateStrategy: UpdateRecreate})
	op.Spec.Retry = &RetrySpec{Jitter: ptr(0.5)}
	Default(op)
	s := op.Spec
	checks := []struct {
		name      string
		got, want any
	}{
		{"handler timeout", s.Handler.Timeout.Duration, 10 * time.Second},
		{"service port of https", s.Handler.Service.Port, int32(443)},
		{"retry initialDelay", s.Retry.InitialDelay.Duration, time.Second},
		{"retry multiplier", *s.Retry.Multiplier, 2.0},
		{"retry maxDelay", s.Retry.MaxDelay.Duration, 5 * time.Minute},
		{"retry jitter that was set", *s.Retry.Jitter, 0.5},
		{"retry maxAttempts", *s.Retry.MaxAttempts, 0},
		{"maxInFlight", s.Concurrency.MaxInFlight, 64},
		{"resyncPeriod", s.ResyncPeriod.Duration, 10 * time.Minute},
		{"child updateStrategy", s.Children[0].UpdateStrategy, UpdateApply},
		{"child updateStrategy that was set", s.Children[1].UpdateStrategy, UpdateRecreate},
		{"apiVersion", op.APIVersion, APIVersion},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	once, _ := json.Marshal(op)
	Default(op)
	if twice, _ := json.Marshal(op); string(once) != string(twice) {
		t.Errorf("Default is not idempotent:\n%s\n%s", once, twice)
	}
}
