package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opgate/opgate/gateway/metrics/metricstest"
	"github.com/opgate/opgate/gateway/spec"
)

// An operator that cannot start shows why in the web view, as /readyz
// says it, not CacheNotSynced; and neither the web view nor opgate_objects
// claims counts for it, since no cache holds its objects.
func TestAnOperatorThatCannotStartShowsWhyAndNoObjectCounts(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		edit         func(s *spec.OperatorSpec, ns string)
	}{
		{"nosecret", "SecretUnreadable", func(s *spec.OperatorSpec, ns string) {
			s.Handler.Auth = &spec.AuthSpec{HMACSecretRef: &spec.SecretKeyRef{Namespace: ns, Name: "missing", Key: "key"}}
		}},
		{"nokind", spec.ReasonKindNotFound, func(s *spec.OperatorSpec, _ string) { s.Watch.Kind = "Nonesuch" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			h := newHandler(t, ok(map[string]any{}))
			op := operatorFor(t, tc.name, ns, h.URL, func(s *spec.OperatorSpec) {
				tc.edit(s, ns)
				s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
			})
			base := startOpsServer(t, op)
			eventually(t, 30*time.Second, func() error {
				if code, body := fetch(t, base+"/readyz"); code != 503 || !strings.Contains(body, tc.reason) {
					return fmt.Errorf("/readyz %d %s, want 503 naming %s", code, body, tc.reason)
				}
				return nil
			})
			_, page := fetch(t, base+"/ui/operators/"+tc.name)
			if !strings.Contains(page, tc.reason) || strings.Contains(page, spec.ReasonCacheNotSynced) {
				t.Errorf("/ui/operators/%s does not say %s (or says %s):\n%s", tc.name, tc.reason, spec.ReasonCacheNotSynced, page)
			}
			if !strings.Contains(page, "Objects unknown: caches not synced.") || strings.Contains(page, "0 objects") {
				t.Errorf("/ui/operators/%s counts objects no cache holds:\n%s", tc.name, page)
			}
			if _, index := fetch(t, base+"/ui/"); strings.Contains(index, "<td>0</td>") {
				t.Errorf("/ui/ counts 0 objects for %s, which no cache holds:\n%s", tc.name, index)
			}
			fams := scrape(t, base)
			if v, ok := metricstest.Value(fams["opgate_objects"], map[string]string{"operator": tc.name}); ok {
				t.Errorf("opgate_objects{operator=%s} = %v, though no cache holds its objects", tc.name, v)
			}
			if v, ok := metricstest.Value(fams["opgate_operator_ready"], map[string]string{"operator": tc.name, "reason": tc.reason}); !ok || v != 0 {
				t.Errorf("opgate_operator_ready{operator=%s,reason=%s} = %v (present %v), want 0", tc.name, tc.reason, v, ok)
			}
		})
	}
}
