package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/spec"
)

// KindRecord remembers, across restarts, the kinds each operator ran on:
// the kinds it may still hold finalizers on, so that a gateway restarted
// with a changed operator still knows where to let go (docs/architecture.md,
// "What the gateway lets go of, and when").
type KindRecord interface {
	Kinds(ctx context.Context, operator string) ([]schema.GroupKind, error)
	// SetKinds replaces the operator's kinds; none removes its entry.
	SetKinds(ctx context.Context, operator string, kinds []schema.GroupKind) error
}

// WatchedKindsAnnotation is where registry mode records, on each
// WebhookOperator, the kinds it ran on (comma-separated Kind.group).
const WatchedKindsAnnotation = spec.Group + "/watched-kinds"

func formatKinds(kinds []schema.GroupKind) string {
	s := make([]string, 0, len(kinds))
	for _, gk := range kinds {
		s = append(s, gk.String())
	}
	sort.Strings(s)
	return strings.Join(slices.Compact(s), ",")
}

func parseKinds(s string) []schema.GroupKind {
	var out []schema.GroupKind
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, schema.ParseGroupKind(k))
		}
	}
	return out
}

// operatorObjectRecord keeps the record in an annotation of the
// WebhookOperator itself, so it goes away with it.
type operatorObjectRecord struct{ dyn dynamic.Interface }

func (r operatorObjectRecord) Kinds(ctx context.Context, operator string) ([]schema.GroupKind, error) {
	o, err := r.dyn.Resource(OperatorResource).Get(ctx, operator, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the kinds recorded on WebhookOperator %s: %w", operator, err)
	}
	return parseKinds(o.GetAnnotations()[WatchedKindsAnnotation]), nil
}

func (r operatorObjectRecord) SetKinds(ctx context.Context, operator string, kinds []schema.GroupKind) error {
	var value any // nil removes the annotation
	if len(kinds) > 0 {
		value = formatKinds(kinds)
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{WatchedKindsAnnotation: value}}})
	if err != nil {
		return err
	}
	_, err = r.dyn.Resource(OperatorResource).Patch(ctx, operator, types.MergePatchType, body, metav1.PatchOptions{FieldManager: apply.FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("record the kinds of WebhookOperator %s: %w", operator, err)
	}
	return nil
}

// ConfigMapRecord keeps a file-mode gateway's record in a ConfigMap of its
// own: one key per operator, its kinds as value. Two gateways must never
// share one, or each would release the other's operators.
type ConfigMapRecord struct {
	Kube kubernetes.Interface
	Ref  types.NamespacedName
}

func (r ConfigMapRecord) read(ctx context.Context) (map[string]string, error) {
	cm, err := r.Kube.CoreV1().ConfigMaps(r.Ref.Namespace).Get(ctx, r.Ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read operator record %s: %w", r.Ref, err)
	}
	return cm.Data, nil
}

// Operators returns the operators recorded.
func (r ConfigMapRecord) Operators(ctx context.Context) ([]string, error) {
	data, err := r.read(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(data))
	for name := range data {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// Kinds implements KindRecord.
func (r ConfigMapRecord) Kinds(ctx context.Context, operator string) ([]schema.GroupKind, error) {
	data, err := r.read(ctx)
	kinds, _ := splitEntry(data[operator])
	return parseKinds(kinds), err
}

// SetKinds implements KindRecord, creating the ConfigMap when missing. The
// namespaces recorded stay while kinds do.
func (r ConfigMapRecord) SetKinds(ctx context.Context, operator string, kinds []schema.GroupKind) error {
	if len(kinds) == 0 {
		return r.write(ctx, operator, "")
	}
	data, err := r.read(ctx)
	if err != nil {
		return err
	}
	_, namespaces := splitEntry(data[operator])
	return r.write(ctx, operator, joinEntry(formatKinds(kinds), namespaces))
}

// write sets the operator's entry; "" removes it.
func (r ConfigMapRecord) write(ctx context.Context, operator, entry string) error {
	var value any // nil removes the key
	if entry != "" {
		value = entry
	}
	body, err := json.Marshal(map[string]any{"data": map[string]any{operator: value}})
	if err != nil {
		return err
	}
	cms := r.Kube.CoreV1().ConfigMaps(r.Ref.Namespace)
	_, err = cms.Patch(ctx, r.Ref.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: apply.FieldManager})
	if apierrors.IsNotFound(err) && value != nil {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: r.Ref.Name, Namespace: r.Ref.Namespace},
			Data: map[string]string{operator: entry}}
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: apply.FieldManager})
		if apierrors.IsAlreadyExists(err) { // created meanwhile: patch it
			_, err = cms.Patch(ctx, r.Ref.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: apply.FieldManager})
		}
	}
	switch {
	case err == nil || value == nil && apierrors.IsNotFound(err): // nothing left to remove
		return nil
	case apply.NamespaceMissing(err):
		// The API server's message names the namespace but not why it
		// mattered; most likely a typo in --operator-record.
		return fmt.Errorf("record operator %s in ConfigMap %s: namespace %s does not exist: %w", operator, r.Ref, r.Ref.Namespace, err)
	}
	return fmt.Errorf("record operator %s in ConfigMap %s: %w", operator, r.Ref, err)
}
