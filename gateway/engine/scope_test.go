package engine

import (
	"slices"
	"testing"
)

func TestRecordEntryKeepsKindsAndNamespaces(t *testing.T) {
	for _, tc := range []struct {
		name       string
		entry      string
		kinds      string
		namespaces []string // nil: every namespace
	}{
		{"kinds older than namespaces read as every namespace", "Widget.test.opgate.dev", "Widget.test.opgate.dev", nil},
		{"namespaces sorted without duplicates", "Widget.test.opgate.dev;b,a,b", "Widget.test.opgate.dev", []string{"a", "b"}},
		{"namespaces recorded before the first kind", ";team-a", "", []string{"team-a"}},
		{"nothing recorded", "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kinds, ns := splitEntry(tc.entry)
			if kinds != tc.kinds || !sameNamespaces(ns, tc.namespaces) {
				t.Fatalf("splitEntry(%q) = %q, %q; want %q, %q", tc.entry, kinds, ns, tc.kinds, tc.namespaces)
			}
			k2, ns2 := splitEntry(joinEntry(kinds, ns))
			if k2 != kinds || !sameNamespaces(ns2, ns) {
				t.Errorf("joinEntry(%q, %q) reads back as %q, %q", kinds, ns, k2, ns2)
			}
		})
	}
}

func TestUnionNamespacesEveryNamespaceAbsorbs(t *testing.T) {
	if got := unionNamespaces([]string{"b"}, []string{"a", "b"}); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("union of [b] and [a b] = %q", got)
	}
	for _, pair := range [][2][]string{{nil, {"a"}}, {{"a"}, nil}, {nil, nil}} {
		if got := unionNamespaces(pair[0], pair[1]); got != nil {
			t.Errorf("union of %q and %q = %q, want every namespace (nil)", pair[0], pair[1], got)
		}
	}
}
