package engine

import (
	"testing"

	"github.com/opgate/opgate/gateway/check"
)

func TestHandlersConditionsNeverDropTheGatewaysReconciled(t *testing.T) {
	const rec = `{"type":"Reconciled","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"}`
	for _, tc := range []struct{ name, current, patch, want string }{
		{"a list without Reconciled keeps the object's",
			`{"conditions":[` + rec + `]}`, `{"conditions":[{"type":"BackedUp"}]}`, `{"conditions":[{"type":"BackedUp"},` + rec + `]}`},
		{"an empty list keeps it",
			`{"conditions":[{"type":"Old"},` + rec + `]}`, `{"conditions":[]}`, `{"conditions":[` + rec + `]}`},
		{"a handler's own Reconciled stands",
			`{"conditions":[` + rec + `]}`, `{"conditions":[{"type":"Reconciled","status":"False"}]}`, `{"conditions":[{"type":"Reconciled","status":"False"}]}`},
		{"no Reconciled on the object: the list as answered",
			`{"conditions":[{"type":"Old"}]}`, `{"conditions":[{"type":"BackedUp"}]}`, `{"conditions":[{"type":"BackedUp"}]}`},
		{"no conditions answered: the patch as answered",
			`{"conditions":[` + rec + `]}`, `{"message":"hi"}`, `{"message":"hi"}`},
		{"every condition removed (null) but Reconciled",
			`{"conditions":[{"type":"Old"},` + rec + `]}`, `{"conditions":null}`, `{"conditions":[` + rec + `]}`},
		{"null without Reconciled on the object",
			`{"conditions":[{"type":"Old"}]}`, `{"conditions":null}`, `{"conditions":null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			current, patch := decodeMap(t, tc.current), decodeMap(t, tc.patch)
			got := keepingReconciled(current, patch)
			if !check.EqualJSON(got, decodeMap(t, tc.want)) {
				t.Errorf("keepingReconciled(%s, %s) = %v, want %s", tc.current, tc.patch, got, tc.want)
			}
			if !check.EqualJSON(patch, decodeMap(t, tc.patch)) {
				t.Errorf("the handler's patch was changed in place: %v", patch)
			}
		})
	}
}

func decodeMap(t *testing.T, s string) map[string]any {
	t.Helper()
	return mustDecode(t, []byte(s))
}
