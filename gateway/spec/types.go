// Package spec is the WebhookOperator registration: its Go types, the JSON
// Schema both the CRD and `gateway run -f` documents are validated with, the
// semantic checks, and loading from files.
package spec

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group, Version and Kind of the registration object.
const (
	Group      = "opgate.dev"
	Version    = "v1alpha1"
	Kind       = "WebhookOperator"
	APIVersion = Group + "/" + Version
	Resource   = "webhookoperators"
)

// Event names a callback may subscribe to.
type Event string

// The events of docs/contract.md ("Events and when they fire").
const (
	EventCreate Event = "create"
	EventUpdate Event = "update"
	EventDelete Event = "delete"
	EventResume Event = "resume"
	EventTimer  Event = "timer"
	EventSync   Event = "sync"
)

// UpdateStrategy says how a changed child is brought to the desired state.
type UpdateStrategy string

// Child update strategies.
const (
	UpdateApply    UpdateStrategy = "Apply"
	UpdateRecreate UpdateStrategy = "Recreate"
	UpdateOnDelete UpdateStrategy = "OnDelete"
)

// WebhookOperator registers one operator: what to watch and whom to call.
// The same document is a cluster object (the CRD in crds/) and a file
// (gateway run -f); Parse, LoadFiles and DecodeObject check both the same way.
type WebhookOperator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   OperatorSpec   `json:"spec"`
	Status OperatorStatus `json:"status,omitempty"`
}

// OperatorSpec is the registration documented in docs/registration.md. After Default, Retry,
// Concurrency, ResyncPeriod and Handler.Timeout are never nil.
type OperatorSpec struct {
	Watch    WatchSpec     `json:"watch"`
	Children []ChildSpec   `json:"children,omitempty"`
	Related  []RelatedSpec `json:"related,omitempty"`
	// Handler is the default endpoint of every callback; it may lack url
	// and service only when every callback has its own.
	Handler   HandlerSpec `json:"handler"`
	Callbacks []Callback  `json:"callbacks"`
	// Retry is the backoff of every callback, unless it overrides fields.
	Retry        *RetrySpec   `json:"retry,omitempty"`
	Concurrency  *Concurrency `json:"concurrency,omitempty"`
	ResyncPeriod *Duration    `json:"resyncPeriod,omitempty"`
	// Status says what the gateway writes on the watched objects' status.
	Status *StatusSpec `json:"status,omitempty"`
}

// StatusSpec: with Conditions, the gateway sets status.observedGeneration
// and a Reconciled condition on every watched object (docs/registration.md).
type StatusSpec struct {
	Conditions bool `json:"conditions,omitempty"`
}

// WatchSpec names the parent resource.
type WatchSpec struct {
	APIVersion    string                `json:"apiVersion"`
	Kind          string                `json:"kind"`
	Namespaces    []string              `json:"namespaces,omitempty"`
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
}

// ChildSpec declares a kind a response may create. A kind (group and kind,
// whatever the version) is declared at most once. UpdateStrategy defaults
// to Apply.
type ChildSpec struct {
	APIVersion          string         `json:"apiVersion"`
	Kind                string         `json:"kind"`
	UpdateStrategy      UpdateStrategy `json:"updateStrategy,omitempty"`
	AllowCrossNamespace bool           `json:"allowCrossNamespace,omitempty"`
}

// RelatedSpec declares read-only objects sent along with sync requests.
// LabelSelector values may be Go templates over the parent object.
type RelatedSpec struct {
	APIVersion    string                `json:"apiVersion"`
	Kind          string                `json:"kind"`
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
}

// HandlerSpec is an endpoint: a URL or a Service reference (not both),
// plus timeout (default 10s) and auth. On a callback it overrides the
// operator's handler as Callback.EffectiveHandler describes.
type HandlerSpec struct {
	URL     string      `json:"url,omitempty"`
	Service *ServiceRef `json:"service,omitempty"`
	Timeout *Duration   `json:"timeout,omitempty"`
	Auth    *AuthSpec   `json:"auth,omitempty"`
}

// ServiceRef resolves to scheme://name.namespace.svc:port/path; scheme
// defaults to http and port to the scheme's (80 or 443). See URL.
type ServiceRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Port      int32  `json:"port,omitempty"`
	Path      string `json:"path,omitempty"`
	Scheme    string `json:"scheme,omitempty"`
}

// AuthSpec names Secrets holding credentials; never inline secrets.
type AuthSpec struct {
	HMACSecretRef        *SecretKeyRef `json:"hmacSecretRef,omitempty"`
	BearerTokenSecretRef *SecretKeyRef `json:"bearerTokenSecretRef,omitempty"`
	CABundle             string        `json:"caBundle,omitempty"`
	ClientCertSecretRef  *SecretRef    `json:"clientCertSecretRef,omitempty"`
}

// SecretKeyRef points at one key of a Secret.
type SecretKeyRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// SecretRef points at a kubernetes.io/tls Secret.
type SecretRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Callback is one subscription of the operator. Interval, InitialDelay and
// Idle belong to timer callbacks only; Path is appended to the endpoint.
type Callback struct {
	ID           string       `json:"id"`
	Events       []Event      `json:"events"`
	Path         string       `json:"path,omitempty"`
	Handler      *HandlerSpec `json:"handler,omitempty"`
	When         *When        `json:"when,omitempty"`
	Interval     *Duration    `json:"interval,omitempty"`
	InitialDelay *Duration    `json:"initialDelay,omitempty"`
	Idle         *Duration    `json:"idle,omitempty"`
	Retry        *RetrySpec   `json:"retry,omitempty"`
}

// When filters which changes call a callback (Kopf's field=, labels=, annotations=).
type When struct {
	Fields      []string          `json:"fields,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Filter values with a special meaning in When.Labels / When.Annotations.
const (
	FilterPresent = "present"
	FilterAbsent  = "absent"
)

// RetrySpec configures exponential backoff. Nil fields take defaults
// (Default fills them on the operator; Callback.EffectiveRetry merges a
// callback's override over them). MaxAttempts 0 means no limit.
type RetrySpec struct {
	InitialDelay *Duration `json:"initialDelay,omitempty"`
	Multiplier   *float64  `json:"multiplier,omitempty"`
	MaxDelay     *Duration `json:"maxDelay,omitempty"`
	Jitter       *float64  `json:"jitter,omitempty"`
	MaxAttempts  *int      `json:"maxAttempts,omitempty"`
}

// Concurrency bounds the callbacks of one operator in flight (default 64).
type Concurrency struct {
	MaxInFlight int `json:"maxInFlight,omitempty"`
}

// OperatorStatus is what the gateway reports on a WebhookOperator.
type OperatorStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	WatchedObjects     int                `json:"watchedObjects,omitempty"`
	CallbacksFailing   int                `json:"callbacksFailing,omitempty"`
	FinalizersPending  int                `json:"finalizersPending,omitempty"`
	LastError          string             `json:"lastError,omitempty"`
	Gateway            *GatewayRef        `json:"gateway,omitempty"`
}

// GatewayRef names the gateway that wrote an operator's Ready: its
// identity and, with leader election, the Lease ("namespace/name") it acts
// under. A gateway that crashed writes nothing more, so its last Ready
// stays; whether that Lease is still renewed by this identity says whether
// the Ready still stands.
type GatewayRef struct {
	Identity string `json:"identity,omitempty"`
	Lease    string `json:"lease,omitempty"`
}

// Condition types and reasons on OperatorStatus.
const (
	ConditionReady             = "Ready"
	ReasonRunning              = "Running"
	ReasonKindNotFound         = "KindNotFound"
	ReasonAPIServerUnreachable = "APIServerUnreachable"
	ReasonHandlerUnreachable   = "HandlerUnreachable"
	ReasonInvalidSpec          = "InvalidSpec"

	// Ready=False for an operator whose watched kind is cluster-scoped
	// while spec.watch.namespaces lists namespaces: such objects are in
	// none, so there is nothing to watch there. Known only once the kind
	// is resolved, so not a spec error (SpecAccepted stays True).
	ReasonNamespacesOnClusterScopedKind = "NamespacesOnClusterScopedKind"

	// Ready=False while the operator's informer caches have not synced,
	// and while listing or watching one of its kinds fails.
	ReasonCacheNotSynced = "CacheNotSynced"
	ReasonWatchFailed    = "WatchFailed"
	ReasonForbidden      = "Forbidden"

	// Ready=False once the gateway that ran the operator stopped, no other
	// having written its Ready since.
	ReasonGatewayStopped = "GatewayStopped"

	// SpecAccepted says whether the latest generation's spec is valid; an
	// invalid one leaves the last valid generation running (Ready).
	ConditionSpecAccepted = "SpecAccepted"
	ReasonAccepted        = "Accepted"
)
