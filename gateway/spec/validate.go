package spec

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/opgate/opgate/gateway/jsontemplate"
)

// MaxNameLength is the longest operator name: the state annotation key
// "opgate.dev/state.<name>" has a name part of at most 63 characters, of
// which "state." takes 6.
const MaxNameLength = 63 - len("state.")

// ValidateObject checks a WebhookOperator read from the cluster (the
// content of an unstructured object) exactly as Parse checks a file: JSON
// Schema, then Validate. The error is an ErrorList.
func ValidateObject(obj map[string]any) error {
	_, err := DecodeObject(obj)
	return err
}

// DecodeObject checks a WebhookOperator read from the cluster like
// ValidateObject and returns it decoded and defaulted. obj is not modified,
// so it may come straight from an informer's cache.
func DecodeObject(obj map[string]any) (*WebhookOperator, error) {
	doc, err := jsonCompatible(obj)
	if err != nil {
		return nil, fmt.Errorf("encode WebhookOperator: %w", err)
	}
	op, errs, err := check(doc)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		name, _ := lookup(doc, []string{"metadata", "name"}).(string)
		errs.locate("", 0, name)
		return nil, errs
	}
	return op, nil
}

// Validate runs the checks a JSON Schema cannot express, on an operator
// that already matches the schema. It returns an ErrorList with every
// problem, each with its JSON path.
func Validate(op *WebhookOperator) error {
	errs := validate(op)
	errs.locate("", 0, op.Name)
	return errs.Err()
}

func validate(op *WebhookOperator) ErrorList {
	var v validator
	if len(op.Name) > MaxNameLength {
		v.addf("/metadata/name", "must be at most %d characters, so that the state annotation %s is a valid key", MaxNameLength, op.StateAnnotation())
	}
	s := &op.Spec
	v.groupVersion("/spec/watch/apiVersion", s.Watch.APIVersion)
	v.selector("/spec/watch/labelSelector", s.Watch.LabelSelector, false)
	v.kinds("children", len(s.Children), func(i int) (string, string) { return s.Children[i].APIVersion, s.Children[i].Kind })
	v.kinds("related", len(s.Related), func(i int) (string, string) { return s.Related[i].APIVersion, s.Related[i].Kind })
	for i, r := range s.Related {
		v.selector(fmt.Sprintf("/spec/related/%d/labelSelector", i), r.LabelSelector, true)
	}
	v.handler("/spec/handler", &s.Handler)
	v.endpoints(op)
	v.callbacks(op)
	v.retry("/spec/retry", s.Retry, RetrySpec{})
	v.positive("/spec/resyncPeriod", s.ResyncPeriod)
	return v.errs
}

// validator collects errors; each check adds to it and never stops early.
type validator struct{ errs ErrorList }

func (v *validator) addf(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// groupVersion checks that an apiVersion names a group (a DNS subdomain,
// empty for the core group) and a version (a DNS label).
func (v *validator) groupVersion(path, apiVersion string) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	switch {
	case err != nil:
		v.addf(path, "%q is not group/version: %v", apiVersion, err)
	case gv.Version == "":
		v.addf(path, "%q has no version", apiVersion)
	default:
		if gv.Group != "" {
			for _, msg := range validation.IsDNS1123Subdomain(gv.Group) {
				v.addf(path, "group %q: %s", gv.Group, msg)
			}
		}
		for _, msg := range validation.IsDNS1123Label(gv.Version) {
			v.addf(path, "version %q: %s", gv.Version, msg)
		}
	}
}

// kinds checks the apiVersions of a list of kinds and refuses a kind
// declared twice: children and related objects are keyed by kind, so a
// second entry would be ambiguous.
func (v *validator) kinds(field string, n int, at func(int) (apiVersion, kind string)) {
	seen := map[schema.GroupKind]int{}
	for i := range n {
		apiVersion, kind := at(i)
		v.groupVersion(fmt.Sprintf("/spec/%s/%d/apiVersion", field, i), apiVersion)
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil || kind == "" {
			continue
		}
		gk := gv.WithKind(kind).GroupKind()
		if j, dup := seen[gk]; dup {
			v.addf(fmt.Sprintf("/spec/%s/%d", field, i), "%s is already declared in %s[%d]", gk, field, j)
			continue
		}
		seen[gk] = i
	}
}

// selector checks a label selector. Values of related selectors may be
// templates over the parent, so only their keys are checked as labels,
// and their templates must parse.
func (v *validator) selector(path string, sel *metav1.LabelSelector, templated bool) {
	if sel == nil {
		return
	}
	for key, value := range sel.MatchLabels {
		p := joinPointer(path+"/matchLabels", key)
		v.labelKey(p, key)
		if !templated {
			v.labelValue(p, value)
		} else {
			v.template(p, value)
		}
	}
	for i, e := range sel.MatchExpressions {
		p := fmt.Sprintf("%s/matchExpressions/%d", path, i)
		v.labelKey(p+"/key", e.Key)
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				v.addf(p+"/values", "must not be empty with operator %s", e.Operator)
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				v.addf(p+"/values", "must be empty with operator %s", e.Operator)
			}
		}
		for j, value := range e.Values {
			if !templated {
				v.labelValue(fmt.Sprintf("%s/values/%d", p, j), value)
			} else {
				v.template(fmt.Sprintf("%s/values/%d", p, j), value)
			}
		}
	}
}

func (v *validator) labelKey(path, key string) {
	for _, msg := range validation.IsQualifiedName(key) {
		v.addf(path, "label key %q: %s", key, msg)
	}
}

// template checks a related selector value that is a template: it must
// parse, and use only what applies to JSON data.
func (v *validator) template(path, value string) {
	if !strings.Contains(value, "{{") {
		return
	}
	if _, err := jsontemplate.Parse(value); err != nil {
		v.addf(path, "template %q: %v", value, err)
	}
}

func (v *validator) labelValue(path, value string) {
	for _, msg := range validation.IsValidLabelValue(value) {
		v.addf(path, "label value %q: %s", value, msg)
	}
}

// handler checks one endpoint, of the operator or of a callback.
func (v *validator) handler(path string, h *HandlerSpec) {
	if h == nil {
		return
	}
	if h.URL != "" && h.Service != nil {
		v.addf(path, "set only one of url, service")
	}
	v.positive(path+"/timeout", h.Timeout)
	if h.Auth != nil && h.Auth.CABundle != "" {
		if err := checkCABundle(h.Auth.CABundle); err != nil {
			v.addf(path+"/auth/caBundle", "%v", err)
		}
	}
}

// checkCABundle refuses a bundle that would make every TLS handshake fail
// later, at the first callback, far from the mistake.
func checkCABundle(b64 string) error {
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("not base64: %w", err)
	}
	certs := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", certs+1, err)
		}
		certs++
	}
	if certs == 0 {
		return fmt.Errorf("holds no PEM CERTIFICATE block")
	}
	return nil
}

// endpoints makes sure every callback can be called: either the operator
// has a default endpoint or each callback brings its own.
func (v *validator) endpoints(op *WebhookOperator) {
	if op.Spec.Handler.hasEndpoint() {
		return
	}
	var missing []string
	for i, c := range op.Spec.Callbacks {
		if c.Handler == nil || !c.Handler.hasEndpoint() {
			missing = append(missing, fmt.Sprintf("callbacks[%d] (%s)", i, c.ID))
		}
	}
	if len(missing) > 0 {
		v.addf("/spec/handler", "set url or service, here or on every callback; %s have none", strings.Join(missing, ", "))
	}
}

func (v *validator) positive(path string, d *Duration) {
	if d != nil && d.Duration <= 0 {
		v.addf(path, "must be greater than 0")
	}
}

// retry checks backoff settings as they will be used: a callback's
// override merged over the operator's (given as base) and the defaults.
func (v *validator) retry(path string, r *RetrySpec, base RetrySpec) {
	if r == nil {
		return
	}
	eff := Callback{Retry: r}.EffectiveRetry(base)
	initial := eff.InitialDelay.Or(DefaultRetryInitialDelay)
	maxDelay := eff.MaxDelay.Or(DefaultRetryMaxDelay)
	v.positive(path+"/initialDelay", r.InitialDelay)
	if maxDelay < initial {
		v.addf(path+"/maxDelay", "must not be less than initialDelay (%s < %s)", maxDelay, initial)
	}
}
