package state

import "testing"

// FuzzDecode: a corrupted or hand-edited state annotation never panics the
// gateway; what decodes can be read and written back.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"h":"abc","r":{"ev":"create","done":["a"]},"p":{"x":{"a":2,"f":"2026-11-25T10:00:00Z"}}}`,
		`{"p":{"x":{"a":2,"f":"2026-11-25T10:00:00Z","v":"update","o":[{"a":1,"f":"2026-11-25T10:00:00Z","x":true,"v":"sync"},null]}}}`, `{"e":"H4sIAAAAAAAA"}`, `{`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		st, err := Decode(value)
		if err != nil {
			return
		}
		_, _ = st.HandledEssence() // may fail on a corrupt essence; must not panic
		for id := range st.Progress {
			st.ProgressFor(id, "sync").Holds("update")
			st.ClearFailed(id, "resume")
		}
		if _, err := st.Encode(); err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
	})
}
