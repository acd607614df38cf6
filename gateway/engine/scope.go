package engine

import (
	"context"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/spec"
)

// NamespaceRecord is a KindRecord that also remembers the namespaces each
// operator watched, so that a sweep lets go only where this gateway could
// have held: another gateway may run an operator of the same name (the
// same finalizer) in other namespaces.
type NamespaceRecord interface {
	// Namespaces returns the namespaces recorded for the operator; nil
	// means every namespace (recorded so, or a record older than
	// namespaces). fresh is true when nothing is recorded for it.
	Namespaces(ctx context.Context, operator string) (namespaces []string, fresh bool, err error)
	// SetNamespaces replaces them; nil records every namespace.
	SetNamespaces(ctx context.Context, operator string, namespaces []string) error
	// SetEntry replaces the operator's kinds and namespaces in one write.
	SetEntry(ctx context.Context, operator string, kinds []schema.GroupKind, namespaces []string) error
}

// watchedNamespaces is the namespaces w watches; nil means every one.
func watchedNamespaces(w spec.WatchSpec) []string {
	if len(w.Namespaces) == 0 {
		return nil
	}
	return compactNamespaces(slices.Clone(w.Namespaces))
}

// unionNamespaces joins two scopes; nil (every namespace) absorbs all.
func unionNamespaces(a, b []string) []string {
	if a == nil || b == nil {
		return nil
	}
	return compactNamespaces(append(slices.Clone(a), b...))
}

func compactNamespaces(ns []string) []string {
	slices.Sort(ns)
	return slices.Compact(ns)
}

func sameNamespaces(a, b []string) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

// namespacesToRecord is the record's namespaces of op once op's are
// added, and whether that changes them. A fresh entry gets op's alone.
func namespacesToRecord(ctx context.Context, rec NamespaceRecord, op *spec.WebhookOperator) ([]string, bool, error) {
	recorded, fresh, err := rec.Namespaces(ctx, op.Name)
	if err != nil {
		return nil, false, err
	}
	want := watchedNamespaces(op.Spec.Watch)
	if !fresh {
		want = unionNamespaces(recorded, want)
	}
	return want, fresh || !sameNamespaces(want, recorded), nil
}

// sweepScope is where the operator called name may hold objects: the
// namespaces recorded for it and those scopes gives. nil means every
// namespace, also when nothing records them.
func (m *Manager) sweepScope(ctx context.Context, name string, scopes kindScopes) ([]string, error) {
	rec, ok := m.record.(NamespaceRecord)
	if !ok {
		return nil, nil
	}
	scope, _, err := rec.Namespaces(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, ns := range scopes {
		scope = unionNamespaces(scope, ns)
	}
	return scope, nil
}

// kindScopes maps each kind an operator's specs watched to the namespaces
// they watched it in (nil: every namespace). A sweep that may not list a
// kind in every namespace (namespace-scoped RBAC: Roles only) lists these
// one by one; a kind absent or nil here has nowhere else to look.
type kindScopes map[schema.GroupKind][]string

// scopesOf is the kinds and namespaces the watches name.
func scopesOf(watches ...spec.WatchSpec) kindScopes {
	out := kindScopes{}
	out.add(watches...)
	return out
}

// add joins the watches' kinds and namespaces to k.
func (k kindScopes) add(watches ...spec.WatchSpec) {
	for _, w := range watches {
		k.join(watchedKind(w), watchedNamespaces(w))
	}
}

// join adds namespaces (nil: every one) to the scope of gk.
func (k kindScopes) join(gk schema.GroupKind, namespaces []string) {
	if ns, seen := k[gk]; seen {
		namespaces = unionNamespaces(ns, namespaces)
	}
	k[gk] = namespaces
}

// sameScopes: a and b name the same kinds in the same namespaces.
func sameScopes(a, b kindScopes) bool {
	return maps.EqualFunc(a, b, sameNamespaces)
}

// kinds returns k's kinds, sorted.
func (k kindScopes) kinds() []schema.GroupKind {
	out := make([]schema.GroupKind, 0, len(k))
	for gk := range k {
		out = append(out, gk)
	}
	slices.SortFunc(out, func(a, b schema.GroupKind) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// A ConfigMapRecord entry is "kinds;namespaces"; without ";" (every
// namespace, or a record older than namespaces) it is kinds alone.
func splitEntry(v string) (kinds string, namespaces []string) {
	kinds, ns, scoped := strings.Cut(v, ";")
	if !scoped {
		return kinds, nil
	}
	for _, n := range strings.Split(ns, ",") {
		if n = strings.TrimSpace(n); n != "" {
			namespaces = append(namespaces, n)
		}
	}
	return kinds, compactNamespaces(namespaces)
}

// joinEntry is the entry's value; "" removes it. Namespaces may be
// recorded before the first kind, so that a fresh entry never reads as
// every namespace.
func joinEntry(kinds string, namespaces []string) string {
	if namespaces == nil {
		return kinds
	}
	return kinds + ";" + strings.Join(namespaces, ",")
}

// Namespaces implements NamespaceRecord.
func (r ConfigMapRecord) Namespaces(ctx context.Context, operator string) ([]string, bool, error) {
	data, err := r.read(ctx)
	if err != nil {
		return nil, false, err
	}
	v, ok := data[operator]
	_, ns := splitEntry(v)
	return ns, !ok, nil
}

// SetNamespaces implements NamespaceRecord; the operator's kinds stay.
func (r ConfigMapRecord) SetNamespaces(ctx context.Context, operator string, namespaces []string) error {
	data, err := r.read(ctx)
	if err != nil {
		return err
	}
	kinds, _ := splitEntry(data[operator])
	return r.write(ctx, operator, joinEntry(kinds, namespaces))
}

// SetEntry implements NamespaceRecord.
func (r ConfigMapRecord) SetEntry(ctx context.Context, operator string, kinds []schema.GroupKind, namespaces []string) error {
	return r.write(ctx, operator, joinEntry(formatKinds(kinds), namespaces))
}

// narrowRecordedNamespaces records op's namespaces alone once a sweep of
// within let go of everything outside them.
func (m *Manager) narrowRecordedNamespaces(ctx context.Context, op *spec.WebhookOperator, within []string) error {
	rec, ok := m.record.(NamespaceRecord)
	want := watchedNamespaces(op.Spec.Watch)
	if !ok || sameNamespaces(want, within) {
		return nil
	}
	return rec.SetNamespaces(ctx, op.Name, want)
}
