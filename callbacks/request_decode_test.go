package callbacks

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// requestSeeds are requests the schema admits, each testing one way the
// walk over the parsed document could part from json.Unmarshal.
var requestSeeds = []string{
	memcachedUpdate,
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":2,` +
		`"deadline":"2026-12-01T16:53:40.123456789+02:00","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},` +
		`"data":{"big":12345678901234567890,"neg":-0,"exp":1e3,"frac":0.5,"int":7,"nested":[1,[2.5,{"x":3}]]}},"unknownField":{"ignored":true}}`,
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"update","operator":"o","callback":"c","attempt":1,` +
		`"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},` +
		`"diff":[{"op":"change","path":"/data/x","old":"<a & b>","new":{"k":[1, 2.0, "\u00e9\/"]}},{"op":"remove","path":"/data/y","old":null},{"op":"add","path":"/data/z","new":12345678901234567890}]}`,
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"update","operator":"o","callback":"c","attempt":1,` +
		`"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},"oldUnavailable":true,` +
		`"children":{"apps/v1/Deployment":{}},"related":{"v1/Secret":{"other/s":{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"other"},"data":{"k":"dg=="}}}}}`,
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"delete","operator":"o","callback":"c","attempt":1,` +
		`"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"huge":1e400}}}`,
	// Unstructured finds no kind where the apiVersion does not parse.
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":1,` +
		`"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"a/b/c","kind":"X","metadata":{"name":"a"}}}`,
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":1,` +
		`"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},` +
		`"related":{"v1/Secret":{"s":{"apiVersion":"v1","kind":"","metadata":{"name":"s"}}}}}`,
	// Integers the schema admits that no int holds.
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":1.0,` +
		`"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}}`,
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":99999999999999999999,` +
		`"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}}`,
	// Where the two differ by design (see requestOf), left out by the
	// comparison: a repeated key, an escaped deadline.
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":"x","attempt":1,` +
		`"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}}`,
	`{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"create","operator":"o","callback":"c","attempt":1,` +
		`"deadline":"2026-12-01T16:53:40\u005a","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}}`,
}

// A Mux decodes a request from the document it validated; the result must
// be what json.Unmarshal gives, or fail where it fails.
func TestRequestFromTheValidatedDocumentIsWhatUnmarshalGives(t *testing.T) {
	for _, body := range requestSeeds {
		compareRequestDecoding(t, []byte(body))
	}
}

func FuzzRequestFromTheValidatedDocumentIsWhatUnmarshalGives(f *testing.F) {
	for _, body := range requestSeeds {
		f.Add([]byte(body))
	}
	f.Fuzz(compareRequestDecoding)
}

func compareRequestDecoding(t *testing.T, body []byte) {
	doc, err := parseRequest(body)
	if err != nil {
		return // refused before either decoding
	}
	if top, ok := doc.(map[string]any); ok {
		for key := range top {
			if caseVariantOfAField(key) {
				return // encoding/json matches keys without case; the walk does not
			}
		}
	}
	if deadlineEscaped(body) {
		return // time.Time decodes JSON without unescaping it; the walk unescapes first
	}
	if repeatsATopLevelKey(body) {
		return // json.Unmarshal decodes every occurrence; the walk its last
	}
	var want Request
	wantErr := json.Unmarshal(body, &want)
	got, gotErr := requestOf(doc)
	switch {
	case wantErr != nil && gotErr == nil:
		t.Fatalf("json.Unmarshal fails (%v), requestOf does not, for %s", wantErr, body)
	case wantErr == nil && gotErr != nil:
		t.Fatalf("requestOf fails (%v), json.Unmarshal does not, for %s", gotErr, body)
	case wantErr != nil:
		return
	}
	// A diff value is the same JSON, not always the same bytes (spacing,
	// escapes): compare them compacted and decoded.
	for _, r := range []*Request{&want, got} {
		for i := range r.Diff {
			r.Diff[i].Old, r.Diff[i].New = canonicalJSON(t, r.Diff[i].Old), canonicalJSON(t, r.Diff[i].New)
		}
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("requestOf gives\n%#v\njson.Unmarshal\n%#v\nfor %s", *got, want, body)
	}
}

func caseVariantOfAField(key string) bool {
	for _, f := range []string{"apiVersion", "kind", "uid", "event", "operator", "callback", "attempt", "deadline",
		"object", "old", "diff", "oldUnavailable", "children", "related"} {
		if key != f && strings.EqualFold(key, f) {
			return true
		}
	}
	return false
}

func canonicalJSON(t *testing.T, raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("diff value %s: %v", raw, err)
	}
	out, err := rawOf(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deadlineEscaped reports whether the body's deadline is written with an
// escape.
func deadlineEscaped(body []byte) bool {
	var raw map[string]json.RawMessage
	return json.Unmarshal(body, &raw) == nil && bytes.Contains(raw["deadline"], []byte(`\`))
}

// repeatsATopLevelKey reports whether the body's object has a key twice.
func repeatsATopLevelKey(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		key, _ := tok.(string)
		if seen[key] {
			return true
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}

// A body with two faults names the same one each time.
func TestRequestDecodingNamesTheSameFaultEachTime(t *testing.T) {
	body := `{"apiVersion":"opgate.dev/v1alpha1","kind":"CallbackRequest","uid":"u","event":"update","operator":"o","callback":"c","attempt":1.0,` +
		`"deadline":"2026-12-01T16:53:40Z","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"n":1e400}},` +
		`"children":{"v1/A":{"x":{"apiVersion":"a/b/c","kind":"A","metadata":{"name":"x"}}},"v1/B":{"y":{"apiVersion":"v1","kind":"","metadata":{"name":"y"}}}}}`
	first := ""
	for i := range 20 {
		doc, err := parseJSON([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		_, err = requestOf(doc)
		if err == nil {
			t.Fatal("requestOf accepted a body with three faults")
		}
		if i == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("the same body failed with %q, then %q", first, err)
		}
	}
	if !strings.HasPrefix(first, "attempt: ") {
		t.Errorf("error %q, want the first field in order (attempt)", first)
	}
}
